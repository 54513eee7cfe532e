import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fakeCluster, fakePostmaster, pgts, pgtsProcess, tempDir } from "./helpers.ts";

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir("pgts-runtime-");
});
afterEach(() => tmp.cleanup());

for (const runtime of ["bun", "deno"] as const) {
  describe(`pgts under ${runtime}`, () => {
    test("--help prints the usage and exits 0", async () => {
      const r = await pgtsProcess(runtime, ["--help"]);
      expect(r.code).toBe(0);
      expect(r.out).toContain("pgts status -D DATADIR");
      const verb = await pgtsProcess(runtime, ["stop", "--help"]);
      expect(verb.out).toContain("--mode=MODE");
    });

    test("status exits 3 without a server and 0 with one", async () => {
      fakeCluster(tmp.path);
      const none = await pgtsProcess(runtime, ["status", "-D", tmp.path]);
      expect([none.code, none.out]).toEqual([3, "pgts: no server running\n"]);
      await using pm = await fakePostmaster(tmp.path);
      const running = await pgtsProcess(runtime, ["status", "-D", tmp.path]);
      expect(running.code).toBe(0);
      expect(running.out).toStartWith(`pgts: server is running (PID: ${pm.pid})\n`);
    });

    test("start refuses a data directory another postmaster holds", async () => {
      await pgts(["init", "-D", join(tmp.path, "d")]);
      const dir = join(tmp.path, "d");
      await using pm = await fakePostmaster(dir);
      const r = await pgtsProcess(runtime, ["start", "-D", dir]);
      expect(r.code).toBe(1);
      expect(r.err).toContain(`FATAL:  lock file "${dir}/postmaster.pid" already exists`);
      expect(r.err).toContain(
        `HINT:  Is another postmaster (PID ${pm.pid}) running in data directory "${dir}"?`,
      );
      expect(readFileSync(join(dir, "postmaster.pid"), "utf8")).toStartWith(`${pm.pid}\n`);
    });

    test("start reports config errors with file and line, and releases the lock when it stops", async () => {
      const dir = join(tmp.path, "d");
      await pgts(["init", "-D", dir]);
      const bad = await pgtsProcess(runtime, ["start", "-D", dir, "-c", "max_connections=0"]);
      expect(bad.code).toBe(1);
      expect(bad.err).toContain(
        'FATAL:  0 is outside the valid range for parameter "max_connections" (1 .. 262143)',
      );
      expect(existsSync(join(dir, "postmaster.pid"))).toBe(false);
      // PostmasterMain's check of the reserved slots against max_connections.
      const slots = await pgtsProcess(runtime, [
        "start",
        "-D",
        dir,
        "-c",
        "max_connections=5",
        "-c",
        "superuser_reserved_connections=3",
        "-c",
        "reserved_connections=2",
      ]);
      expect(slots.code).toBe(1);
      expect(slots.err).toContain(
        "FATAL:  superuser_reserved_connections (3) plus reserved_connections (2) must be less than max_connections (5)",
      );
      expect(existsSync(join(dir, "postmaster.pid"))).toBe(false);
      const conf = join(dir, "postgresql.conf");
      const lines = readFileSync(conf, "utf8").split("\n").length;
      appendFileSync(conf, "bogus = 1\n");
      const unknown = await pgtsProcess(runtime, ["start", "-D", dir]);
      expect(unknown.code).toBe(1);
      expect(unknown.err).toContain(
        `LOG:  unrecognized configuration parameter "bogus" in file "${conf}" line ${lines}`,
      );
      expect(unknown.err).toContain(`FATAL:  configuration file "${conf}" contains errors`);
    });
  });
}
