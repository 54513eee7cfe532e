/**
 * `pgts reload` (SIGHUP) on a real server: a changed parameter of sighup or
 * backend context takes effect without a restart, one of postmaster context
 * is refused with PostgreSQL's message and the server carries on.
 */

import { describe, expect, test } from "bun:test";
import net from "node:net";
import { type Adapter, startPgts, usePgtsServers } from "../../helpers/pgts.ts";

usePgtsServers();

/** Opens a TCP connection that never sends a startup packet; resolves with ms until the server closes it. */
function silentClient(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const s = net.connect(port, "127.0.0.1");
    s.on("error", () => {});
    s.on("close", () => resolve(Date.now() - t0));
    setTimeout(() => {
      s.destroy();
      reject(new Error("the server did not close a silent client within 20 s"));
    }, 20_000);
  });
}

for (const adapter of ["subprocess", "inproc"] as Adapter[]) {
  describe(`pgts start --adapter ${adapter}`, () => {
    test("pgts reload applies a changed log_connections to new sessions", async () => {
      const server = await startPgts({ adapter });
      expect((await server.psql("select 1")).code).toBe(0);
      expect(server.log).not.toContain("connection authorized");

      server.appendConf("log_connections = on");
      const from = server.log.length;
      expect((await server.reload()).code).toBe(0);
      await server.waitForLog(/LOG: {2}received SIGHUP, reloading configuration files/, { from });
      await server.waitForLog(/LOG: {2}parameter "log_connections" changed to "on"/, { from });

      expect((await server.psql("select 1")).code).toBe(0);
      await server.waitForLog(/LOG: {2}connection authorized: user=postgres database=postgres/, {
        from,
      });
    });

    test("pgts reload applies a shorter authentication_timeout to clients that never authenticate", async () => {
      const server = await startPgts({ adapter });
      server.appendConf("authentication_timeout = 1s");
      const from = server.log.length;
      await server.reload();
      await server.waitForLog(/LOG: {2}parameter "authentication_timeout" changed to "1s"/, {
        from,
      });
      // The default is a minute; the new setting drops the silent client after about one second.
      expect(await silentClient(server.port)).toBeLessThan(10_000);
      expect((await server.psql("select 1")).code).toBe(0);
    });

    test("pgts reload refuses a changed max_connections and keeps serving", async () => {
      const server = await startPgts({ adapter, settings: {} });
      server.appendConf("max_connections = 50");
      const from = server.log.length;
      await server.reload();
      await server.waitForLog(
        /LOG: {2}parameter "max_connections" cannot be changed without restarting the server/,
        { from },
      );
      expect(server.log.slice(from)).not.toContain('parameter "max_connections" changed');
      expect(await server.psql("show max_connections")).toMatchObject({ code: 0, out: "100\n" });
    });
  });
}
