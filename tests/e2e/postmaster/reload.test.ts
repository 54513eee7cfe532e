/**
 * `pgts reload` (SIGHUP) on a real server: a changed parameter of sighup or
 * backend context takes effect without a restart, one of postmaster context
 * is refused with PostgreSQL's message and the server carries on. ALTER
 * SYSTEM writes DIR/postgresql.auto.conf, which pg_reload_conf() (the
 * postmaster's SIGHUP, sent from the engine) and the next start read.
 */

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import pg from "pg";
import { sharedServer, startSqlServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import type { Adapter, PgtsServer } from "../../helpers/pgts.ts";

useSqlServers();

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

/**
 * pg_reload_conf() through `c`, then waits for `line` in the log and for
 * the engine child, which takes its SIGHUP after the postmaster's. Returns
 * where the reload's lines begin in the log.
 */
async function reloadThrough(server: PgtsServer, c: pg.Client, line: RegExp): Promise<number> {
  const from = server.log.length;
  await c.query("select pg_reload_conf()");
  await server.waitForLog(line, { from });
  await Bun.sleep(500);
  return from;
}

for (const adapter of ["subprocess", "inproc"] as Adapter[]) {
  describe(`pgts start --adapter ${adapter}`, () => {
    // The first three cases share one server: each appends a parameter of
    // its own to postgresql.conf and waits for that parameter's log line
    // after its own reload, and none of the three parameters changes what
    // another case looks at (log_connections is off until the first case
    // turns it on, and nothing else turns it on).
    const shared = sharedServer({ adapter });

    test("pgts reload applies a changed log_connections to new sessions", async () => {
      const server = shared();
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
      const server = shared();
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
      const server = shared();
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

    test("ALTER SYSTEM writes postgresql.auto.conf; pg_reload_conf() applies it, the next start keeps it", async () => {
      const server = await startSqlServer({ adapter, perTest: true });
      const c = await server.client();
      await c.query("alter system set log_connections = on");
      await c.query("alter system set max_connections to 7");
      const auto = () => readFileSync(join(server.dataDir, "postgresql.auto.conf"), "utf8");
      expect(auto()).toMatch(/^log_connections = 'on'$/m);
      expect(auto()).toMatch(/^max_connections = '7'$/m);
      // PostgreSQL's checks and messages.
      const fails = (sql: string) => c.query(sql).then(() => null, (e) => [e.code, e.message]);
      expect(await fails("alter system set no_such_parameter = 1")).toEqual([
        "42704",
        'unrecognized configuration parameter "no_such_parameter"',
      ]);
      expect(await fails("alter system set max_connections = 'many'")).toEqual([
        "22023",
        'invalid value for parameter "max_connections": "many"',
      ]);
      await c.query("begin");
      expect(await fails("alter system reset max_connections")).toEqual([
        "25001",
        "ALTER SYSTEM cannot run inside a transaction block",
      ]);
      await c.query("rollback");
      await c.query("create role plain login password 'plain'");
      const plain = new pg.Client({
        host: server.host,
        port: server.port,
        user: "plain",
        password: "plain",
        database: "postgres",
      });
      await plain.connect();
      const denied = (sql: string) => plain.query(sql).then(() => null, (e) => e.code);
      expect(await denied("alter system set log_connections = off")).toBe("42501");
      expect(await denied("select pg_reload_conf()")).toBe("42501");
      await plain.end();

      // Nothing applied yet; pg_reload_conf() is the postmaster's SIGHUP.
      const from = server.log.length;
      expect((await c.query("select pg_reload_conf() as ok")).rows).toEqual([{ ok: true }]);
      await server.waitForLog(/LOG: {2}received SIGHUP, reloading configuration files/, { from });
      await server.waitForLog(/LOG: {2}parameter "log_connections" changed to "on"/, { from });
      await server.waitForLog(
        /LOG: {2}parameter "max_connections" cannot be changed without restarting the server/,
        { from },
      );
      expect((await server.psql("select 1")).code).toBe(0);
      await server.waitForLog(/LOG: {2}connection authorized: user=postgres database=postgres/, {
        from,
      });
      await c.end();

      // A postmaster parameter takes effect at the next start.
      expect((await server.stop()).code).toBe(0);
      await server.start();
      expect(await server.psql("show max_connections")).toMatchObject({ code: 0, out: "7\n" });
      const d = await server.client();
      await d.query("alter system reset all");
      expect(auto()).not.toMatch(/^[a-z]/m);
      await d.end();
    });

    // The engine child's SIGHUP path is the same under both adapters (the
    // ALTER SYSTEM test above reloads through each); once is enough in CI.
    test.skipIf(adapter === "subprocess")(
      "a reload reaches the engine's sessions: statement_timeout from ALTER SYSTEM acts where no session SET its own",
      async () => {
        const server = await startSqlServer({ adapter, perTest: true });
        const c = await server.client();
        const own = await server.client();
        await own.query("set statement_timeout = 0");
        await c.query("alter system set statement_timeout = '1s'");
        await c.query("alter system set application_name = 'from the file'");
        await reloadThrough(server, c, /LOG: {2}parameter "statement_timeout" changed to "1s"/);
        const show = async (client: typeof c, name: string) =>
          (await client.query(`select current_setting('${name}') as v`)).rows[0].v;
        expect(await show(c, "statement_timeout")).toBe("1s");
        expect(await show(c, "application_name")).toBe("from the file");
        const e = await c.query("select pg_sleep(3)").catch((x) => x);
        expect(e.code).toBe("57014");
        expect(e.message).toBe("canceling statement due to statement timeout");
        // A session's own SET wins; RESET goes back to the file's.
        expect(await show(own, "statement_timeout")).toBe("0");
        expect((await own.query("select pg_sleep(1.5)")).rowCount).toBe(1);
        await own.query("reset statement_timeout");
        expect(await show(own, "statement_timeout")).toBe("1s");
        // Taken back out of the file, the default returns at the next reload.
        await c.query("alter system reset all");
        await reloadThrough(server, c, /LOG: {2}received SIGHUP, reloading configuration files/);
        expect(await show(c, "statement_timeout")).toBe("0");
        expect((await c.query("select pg_sleep(1.2)")).rowCount).toBe(1);
      },
    );

    test.skipIf(adapter === "subprocess")(
      "a parameter given with -c keeps its value over postgresql.auto.conf's at a reload, as PostgreSQL's command line outranks its files",
      async () => {
        const server = await startSqlServer({
          adapter,
          perTest: true,
          settings: { work_mem: "8MB" },
        });
        const c = await server.client();
        await c.query("alter system set work_mem = '16MB'");
        await c.query("alter system set maintenance_work_mem = '80MB'");
        const from = await reloadThrough(
          server,
          c,
          /LOG: {2}parameter "maintenance_work_mem" changed to "80MB"/,
        );
        const show = async (name: string) => (await c.query(`show ${name}`)).rows[0][name];
        expect(await show("maintenance_work_mem")).toBe("80MB");
        expect(await show("work_mem")).toBe("8MB");
        expect(server.log.slice(from)).not.toContain('parameter "work_mem" changed');
        await c.query("alter system reset all");
        await c.end();
      },
    );

    test.skipIf(adapter === "subprocess")(
      "synchronous_commit from ALTER SYSTEM reaches the engine at a reload, as the file's; a session's SET keeps its own",
      async () => {
        const server = await startSqlServer({ adapter, perTest: true });
        const c = await server.client();
        const own = await server.client();
        await own.query("set synchronous_commit = local");
        await c.query("alter system set synchronous_commit = off");
        await reloadThrough(server, c, /LOG: {2}parameter "synchronous_commit" changed to "off"/);
        const row = async (client: typeof c) =>
          (await client.query(
            "select setting, source, sourcefile from pg_settings where name = 'synchronous_commit'",
          )).rows[0];
        const auto = join(server.dataDir, "postgresql.auto.conf");
        expect(await row(c)).toEqual({
          setting: "off",
          source: "configuration file",
          sourcefile: auto,
        });
        const fresh = await server.client();
        expect((await fresh.query("show synchronous_commit")).rows[0].synchronous_commit).toBe(
          "off",
        );
        expect(await row(own)).toMatchObject({ setting: "local", source: "session" });
        await own.query("reset synchronous_commit");
        expect(await row(own)).toMatchObject({ setting: "off", source: "configuration file" });
        await c.query("alter system reset all");
        await c.end();
      },
    );
  });
}
