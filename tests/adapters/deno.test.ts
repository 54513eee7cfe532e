/**
 * The Deno adapters, driven through tests/helpers/deno_driver.ts in a real
 * Deno process: the fork launcher hands clients over without keeping an fd,
 * the Worker launcher relays them; both report signals, kills and crashes
 * as the postmaster expects.
 */

import { beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { POOLED_REUSE } from "../helpers/launcher_checks.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
// deno-lint-ignore no-explicit-any
let results: any;

beforeAll(() => {
  const run = spawnSync(
    `${root}node_modules/.bin/deno`,
    ["run", "-A", "tests/helpers/deno_driver.ts"],
    { cwd: root, encoding: "utf8", timeout: 120_000 },
  );
  if (run.status !== 0) throw new Error(`deno driver failed: ${run.status}\n${run.stderr}`);
  results = JSON.parse(run.stdout.trim().split("\n").at(-1)!);
}, 130_000);

for (const name of ["deno-subprocess", "worker"]) {
  describe(`Deno ${name} launcher`, () => {
    test("a child echoes messages with its pid and start parameters", () => {
      const r = results[name].echo;
      expect(r).toEqual({ echoed: [1, 2, 3], pidMatches: true, params: { n: 1 } });
    });

    test("signals reach the child's handlers, and its return value is the exit code", () => {
      const r = results[name].signals;
      expect(r.got).toEqual(["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGINT", "SIGQUIT", "SIGTERM"]);
      expect(r.exit).toEqual({ code: 7, signal: null });
    });

    test("a SIGTERM sent while the child is still starting reaches its handler", () => {
      expect(results[name].earlySignal).toEqual({
        got: "SIGTERM",
        exit: { code: 0, signal: null },
      });
    });

    test("SIGKILL, an uncaught throw and an unhandled SIGTERM end children as expected", () => {
      const r = results[name].exits;
      expect(r.sigkill).toEqual({ code: null, signal: "SIGKILL" });
      expect(r.throwInMain).toEqual({ code: 2, signal: null });
      expect(r.throwLater).toEqual({ code: 2, signal: null });
      expect(r.unhandledSigterm).toEqual({ code: null, signal: "SIGTERM" });
    });

    for (const family of ["tcp", "unix"]) {
      test(`a ${family} client is served by the child and sees the close when it exits`, () => {
        const r = results[name][family];
        expect(r.greetedByChildPid).toBe(true);
        expect(r.echoed).toBe(true);
        expect(r.exit).toEqual({ code: 0, signal: null });
        // A subprocess owns the socket alone; a Worker's client stays in the
        // postmaster, which relays it.
        expect(r.parentFds).toBe(name === "worker" ? 1 : 0);
      });
    }
  });
}

test("a pooled Deno Worker serves the next client under its pid, with nothing of the last run", () => {
  expect(results.pooledWorker).toEqual(POOLED_REUSE);
});

test("Deno NetAdapter replaces a stale unix socket file and refuses a live one", () => {
  const r = results.stale;
  expect(r.staleLeft).toBe(true);
  expect(r.bound).toBe(true);
  expect(r.second).toContain("already in use");
  expect(r.removedOnClose).toBe(true);
});
