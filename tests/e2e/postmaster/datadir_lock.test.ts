/**
 * postmaster.pid as a lock on a real server's data directory: a second
 * `pgts start` is refused while the first runs; a lock file left by a
 * postmaster that died (SIGKILL) is taken over by the next start. A start
 * whose TCP port another server holds exits, as PostgreSQL's does, rather
 * than serving its Unix socket alone.
 */

import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sharedServer, startSqlServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { type Adapter, isAlive, passAdapters, pgtsCli, waitFor } from "../../helpers/pgts.ts";

useSqlServers();

describe("pgts start", () => {
  // Both cases leave the running server as it was (they check that it is
  // untouched): one server serves both.
  const running = sharedServer();

  test("a second pgts start on a running server's data directory is refused", async () => {
    const server = running();
    const dir = server.dataDir;
    const second = await pgtsCli(["start", "-D", dir, "-p", "0"]);
    expect(second.code).toBe(1);
    expect(second.err).toContain(`FATAL:  lock file "${dir}/postmaster.pid" already exists`);
    expect(second.err).toContain(
      `HINT:  Is another postmaster (PID ${server.pid}) running in data directory "${dir}"?`,
    );
    // The first server is untouched: same lock, still serving.
    expect(server.pidFile()?.[0]).toBe(String(server.pid));
    expect(await server.psql("select 1")).toMatchObject({ code: 0, out: "1\n" });
  });

  test("a start on a TCP port another server listens on exits with FATAL", async () => {
    const server = running();
    const dir = join(mkdtempSync(join(tmpdir(), "pgts-port-")), "data");
    try {
      expect((await pgtsCli(["init", "-D", dir])).code).toBe(0);
      const second = await pgtsCli(["start", "-D", dir, "-p", String(server.port)]);
      expect(second.code).toBe(1);
      expect(second.err).toContain(
        `LOG:  could not bind IPv4 address "127.0.0.1": Address already in use`,
      );
      expect(second.err).toContain(
        `HINT:  Is another postmaster already running on port ${server.port}?`,
      );
      expect(second.err).toContain("FATAL:  could not create any TCP/IP sockets");
      expect(second.err).not.toContain("ready to accept connections");
      // The server on the port is untouched.
      expect(await server.psql("select 1")).toMatchObject({ code: 0, out: "1\n" });
    } finally {
      rmSync(join(dir, ".."), { recursive: true, force: true });
    }
  });
});

for (const adapter of passAdapters(["subprocess", "inproc"] as Adapter[])) {
  describe(`pgts start --adapter ${adapter}`, () => {
    test("a stale postmaster.pid left by a SIGKILLed postmaster is taken over", async () => {
      const server = await startSqlServer({ adapter, perTest: true });
      expect((await server.psql("create table t (a int); insert into t values (5)")).code).toBe(0);
      const children = server.childPids();
      const oldPid = server.pid;
      server.kill("SIGKILL");
      await server.exited;
      // Children notice the postmaster's death and leave by themselves.
      await waitFor("the orphaned children to exit", () => children.every((p) => !isAlive(p)));
      expect(server.pidFile()?.[0]).toBe(String(oldPid));

      await server.start();
      expect(server.pid).not.toBe(oldPid);
      expect(server.pidFile()?.[0]).toBe(String(server.pid));
      expect(await server.psql("select a from t")).toMatchObject({ code: 0, out: "5\n" });
      expect((await server.stop("fast")).code).toBe(0);
    });
  });
}
