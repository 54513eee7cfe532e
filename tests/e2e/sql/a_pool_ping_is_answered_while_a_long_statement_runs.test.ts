/**
 * The pings of connection pools are answered at once while another
 * session's long statement holds the engine, as every PostgreSQL backend
 * answers its own: pgxpool's `-- ping` (before it hands out a connection
 * idle for a second), pgjdbc's empty statement (HikariCP's isValid), `;`.
 * The empty query (EmptyQueryResponse) at once, as a simple Query and as
 * an extended batch; `SELECT 1` (SQLAlchemy's pre-ping, Django's and
 * Rails's checks) after a short wait, so that a session that sits in its
 * transaction is not ended for it either. Before, they waited for the
 * statement, and failed with 55P03 after pgts.engine_wait_timeout. Hand-built bytes for the
 * drivers' messages; node-postgres for the long statement. The default
 * server and --adapter subprocess.
 */

import { describe, expect, test } from "bun:test";
import {
  concat,
  cstr,
  message,
  pgClient,
  RawConnection,
  sharedServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";
import type { Adapter } from "../../helpers/pgts.ts";
import { describeStatement, parse, query, sync } from "../../helpers/describe-first.ts";

useSqlServers({ timeoutMs: 90_000 });

const bind = () => message("B", concat(cstr(""), cstr(""), Uint8Array.of(0, 0, 0, 0, 0, 0)));
const describePortal = () => message("D", concat(new TextEncoder().encode("P"), cstr("")));
const execute = (maxRows = 0) => message("E", concat(cstr(""), Uint8Array.of(0, 0, 0, maxRows)));

for (const adapter of [undefined, "subprocess"] as Array<Adapter | undefined>) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("the empty query, and SELECT 1 after a short wait, are answered while another session's statement holds the engine", async () => {
      const a = await pgClient(server());
      const ping = await RawConnection.open(server());
      await ping.startup();
      let slept = false;
      const long = a.query("select pg_sleep(3)").then(() => slept = true);
      // Until the sleep holds the engine.
      const watch = await pgClient(server());
      const pid = (a as unknown as { processID: number }).processID;
      for (;;) {
        const r = await watch.query(
          "select state, query, wait_event from pg_stat_activity where pid = $1",
          [pid],
        );
        const row = r.rows[0];
        if (
          row?.state === "active" && row.query === "select pg_sleep(3)" && row.wait_event === null
        ) {
          break;
        }
      }
      await watch.end();
      for (
        const sql of ["-- ping", "", ";", " /* ping */ ;\n", "/* nested /* as PostgreSQL's */ */"]
      ) {
        ping.send(query(sql));
        expect(await ping.typesUntil("Z")).toBe("IZ");
      }
      // pgjdbc's empty statement (isValid: Execute with a row limit of 1), and one described first.
      ping.send(concat(parse(""), bind(), describePortal(), execute(1), sync()));
      expect(await ping.typesUntil("Z")).toBe("12nIZ");
      ping.send(concat(parse(""), describeStatement(), bind(), execute(), sync()));
      expect(await ping.typesUntil("Z")).toBe("1tn2IZ");
      // All while the sleep went on.
      expect(slept).toBe(false);
      // A pool's SELECT 1 (SQLAlchemy's pre-ping, Django's and Rails's
      // checks) after a short wait, with PostgreSQL's answer.
      const pool = await pgClient(server());
      const r = await pool.query("SELECT 1");
      expect([r.fields.map((f) => [f.name, f.dataTypeID]), r.rows]).toEqual([
        [["?column?", 23]],
        [{ "?column?": 1 }],
      ]);
      expect((await pool.query("select 1 as ok, 2;")).rows).toEqual([{ ok: 1, "?column?": 2 }]);
      ping.send(concat(parse("SELECT 1"), bind(), describePortal(), execute(), sync()));
      expect(await ping.typesUntil("Z")).toBe("12TDCZ");
      // All while the sleep went on.
      expect(slept).toBe(false);
      // Any other statement waits for it, and the session goes on.
      ping.send(query("select 1 + 1"));
      expect(await ping.typesUntil("Z")).toBe("TDCZ");
      expect(slept).toBe(true);
      await long;
      ping.close();
      await pool.end();
      await a.end();
    });

    test("a SELECT 1 while another session sits in its transaction does not end that session", async () => {
      const a = await pgClient(server());
      const pool = await pgClient(server());
      await a.query("begin");
      await a.query("select 1");
      // Waiting, it would have made a's transaction the engine's holder that
      // others wait for: ended after pgts.engine_hold_timeout (2 s).
      for (let i = 0; i < 3; i++) {
        expect((await pool.query("select 1 as ok")).rows).toEqual([{ ok: 1 }]);
      }
      await Bun.sleep(2500);
      await a.query("commit");
      await a.end();
      await pool.end();
    });
  });
}
