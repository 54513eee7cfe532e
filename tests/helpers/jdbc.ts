/**
 * Runs tests/fixtures/jdbc/PgtsJdbc.java, a Java application's use of
 * PostgreSQL's JDBC driver, against a server. scripts/ensure-jdbc.sh
 * installs the driver (and a JDK) from Debian when they are missing.
 */

import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../..");

/** The driver's jar, or null (and why) when it cannot be installed here. */
export function jdbcDriver(): { jar: string | null; why: string } {
  const r = spawnSync("bash", [join(ROOT, "scripts/ensure-jdbc.sh")], { encoding: "utf8" });
  return r.status === 0
    ? { jar: r.stdout.trim(), why: "" }
    : { jar: null, why: r.stderr.trim() || `exit ${r.status}` };
}

/** The lines PgtsJdbc printed; throws with its output when it failed. */
export async function runJdbc(
  jar: string,
  target: { host: string; port: number; database?: string; user: string; password?: string },
): Promise<string[]> {
  const url = `jdbc:postgresql://${target.host}:${target.port}/${target.database ?? "postgres"}`;
  const p = Bun.spawn([
    "java",
    "-cp",
    jar,
    join(ROOT, "tests/fixtures/jdbc/PgtsJdbc.java"),
    url,
    target.user,
    ...(target.password === undefined ? [] : [target.password]),
  ], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  if (code !== 0) throw new Error(`PgtsJdbc exited ${code}:\n${out}\n${err}`);
  return out.trim().split("\n");
}

/** What PgtsJdbc prints when every step went as it does against PostgreSQL. */
export const JDBC_LINES = [
  "batch 20",
  "prepared 10",
  "isolation serializable",
  "rolled back 1.25",
  "metadata jdbc_items",
  "columns 7",
  "valid while busy true",
  "cancel 57014 in time",
  "error 22012",
  "count 20",
  "concurrent 840",
];
