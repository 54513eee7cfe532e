/**
 * The pings of connection pools are answered at once while another
 * session's long statement holds the engine, as every PostgreSQL backend
 * answers its own: pgxpool's `-- ping` (before it hands out a connection
 * idle for a second), pgjdbc's empty statement (HikariCP's isValid), `;`.
 * They are the empty query: EmptyQueryResponse, as a simple Query and as
 * an extended batch. Before, they waited for the statement, and failed
 * with 55P03 after pgts.engine_wait_timeout. Hand-built bytes for the
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

useSqlServers({ timeoutMs: 90_000 });

const query = (sql: string) => message("Q", cstr(sql));
const parse = (sql: string) => message("P", concat(cstr(""), cstr(sql), Uint8Array.of(0, 0)));
const bind = () => message("B", concat(cstr(""), cstr(""), Uint8Array.of(0, 0, 0, 0, 0, 0)));
const describePortal = () => message("D", concat(cstr("P").subarray(0, 1), cstr("")));
const describeStatement = () => message("D", concat(cstr("S").subarray(0, 1), cstr("")));
const execute = (maxRows = 0) => message("E", concat(cstr(""), Uint8Array.of(0, 0, 0, maxRows)));
const sync = () => message("S");

for (const adapter of [undefined, "subprocess"] as Array<Adapter | undefined>) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("the empty query is answered while another session's statement holds the engine", async () => {
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
      for (const sql of ["-- ping", "", ";", " /* ping */ ;\n"]) {
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
      // A statement does wait for it, and the session goes on.
      ping.send(query("select 1"));
      expect(await ping.typesUntil("Z")).toBe("TDCZ");
      expect(slept).toBe(true);
      await long;
      ping.close();
      await a.end();
    });
  });
}
