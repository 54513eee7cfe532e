/**
 * The HTTP adapter under Deno: tests/http/deno_driver.ts starts it
 * with Deno.serve in a real `deno run -A` process and drives it with the
 * real Neon client; this test checks what the driver saw.
 */

import { beforeAll, describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
// deno-lint-ignore no-explicit-any
let results: any;

beforeAll(async () => {
  const child = spawn(
    `${root}node_modules/.bin/deno`,
    ["run", "-A", "tests/http/deno_driver.ts"],
    { cwd: root, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), 150_000);
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`deno driver failed: ${code}\n${stderr}`);
  results = JSON.parse(stdout.trim().split("\n").at(-1)!);
}, 160_000);

describe("the HTTP adapter under Deno", () => {
  test("serves the Neon driver's queries with parameters of common types", () => {
    expect(results.runtime).toBe("deno");
    expect(results.firstQuery).toEqual([{ one: 1 }]);
    expect(results.params).toEqual([
      { i: 42, t: "deno", b: false, n: null, j: { k: "v" }, f: [1.5, 2] },
    ]);
  });

  test("a transaction commits; a failing one rolls back with its SQLSTATE", () => {
    expect(results.committed).toEqual([[], [{ n: 2 }]]);
    expect(results.failed).toEqual({ code: "23505", name: "NeonDbError" });
    expect(results.afterRollback).toEqual([{ n: 2 }]);
  });

  test("a syntax error carries its SQLSTATE and position", () => {
    expect(results.error).toEqual({ code: "42601", position: "1" });
  });

  test("the admin API answers, and a fast stop exits 0", () => {
    expect(results.adminStatus).toBe(200);
    expect(results.exitCode).toBe(0);
  });
});
