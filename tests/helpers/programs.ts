/**
 * The client programs of tests/fixtures (Python's drivers, Ruby's
 * ActiveRecord): the script that installs what one needs, and a run of it
 * that gives its output lines.
 */

import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "../..");

/** What scripts/`script` printed (an interpreter's path), or null and why it failed. */
export function ensured(script: string): { path: string | null; why: string } {
  const r = spawnSync("bash", [join(ROOT, "scripts", script)], { encoding: "utf8" });
  return r.status === 0
    ? { path: r.stdout.trim(), why: "" }
    : { path: null, why: r.stderr.trim() || `exit ${r.status}` };
}

/** The lines `argv` printed; throws with its output when it failed. */
export async function programLines(
  argv: string[],
  env: Record<string, string> = {},
): Promise<string[]> {
  const p = Bun.spawn(argv, {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...env },
  });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}:\n${out}\n${err}`);
  return out.trim().split("\n");
}
