/** Helpers for CLI tests: captured IO for in-process runs, subprocess runs under Bun and Deno. */

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { CliIO } from "../../src/cli/args.ts";
import { main } from "../../src/cli/main.ts";
import { CLUSTER_FORMAT, VERSION_FILE } from "../../src/core/datadir.ts";

export const ROOT = resolve(import.meta.dir, "../..");
export const BUN = join(ROOT, "node_modules/.bin/bun");
export const DENO = join(ROOT, "node_modules/.bin/deno");

export interface RunResult {
  code: number;
  out: string;
  err: string;
}

/** Runs `pgts args` in this process with captured output. */
export async function pgts(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  let out = "";
  let err = "";
  const io: CliIO = { out: (t) => void (out += t), err: (t) => void (err += t), env };
  const code = await main(args, io);
  return { code, out, err };
}

/** Runs `pgts args` as `bun run mod.ts` or `deno run -A mod.ts`. */
export async function pgtsProcess(runtime: "bun" | "deno", args: string[]): Promise<RunResult> {
  const cmd = runtime === "bun"
    ? [BUN, "run", join(ROOT, "mod.ts"), ...args]
    : [DENO, "run", "-A", join(ROOT, "mod.ts"), ...args];
  const p = Bun.spawn(cmd, {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1" },
  });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { code, out, err };
}

/** A temporary directory, removed by the returned cleanup. */
export function tempDir(prefix: string): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** A minimal cluster directory: mode 0700 and the version marker. */
export function fakeCluster(path: string): void {
  chmodSync(path, 0o700);
  writeFileSync(join(path, VERSION_FILE), `${CLUSTER_FORMAT}\n`);
}

/** Starts the fake postmaster on `dataDir` and waits until its pid file is written. */
export async function fakePostmaster(dataDir: string, flags: string[] = []) {
  const p = Bun.spawn(
    [BUN, join(ROOT, "tests/cli/fixtures/fake-postmaster.ts"), dataDir, ...flags],
    {
      stdout: "pipe",
      stderr: "inherit",
    },
  );
  const reader = p.stdout.getReader();
  const { value } = await reader.read();
  if (!new TextDecoder().decode(value).includes("ready")) throw new Error("fake postmaster failed");
  reader.releaseLock();
  return {
    pid: p.pid,
    exited: p.exited,
    async [Symbol.asyncDispose]() {
      p.kill("SIGKILL");
      await p.exited;
    },
  };
}
