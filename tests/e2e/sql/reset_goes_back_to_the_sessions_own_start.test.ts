/**
 * RESET, RESET ALL and SET … TO DEFAULT go back to what the session started
 * with, as in PostgreSQL: its startup parameters (psql's PGOPTIONS,
 * asyncpg's `server_settings`) and its role's and database's ALTER … SET
 * values, not the server's; another session that started without them
 * gets the server's (whose search_path is PostgreSQL's, `"$user", public`);
 * pg_settings' reset_val says so. asyncpg's pool ends
 * every use of a connection with RESET ALL, and lost the search_path its
 * `server_settings` asked for. psql and node-postgres, under the default
 * server (and --adapter subprocess: ENGINE_TEST_ADAPTERS).
 */

import { describe, expect, test } from "bun:test";
import pg from "pg";
import { pgClient, pgConfig, psql, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

type Pg = Awaited<ReturnType<typeof pgClient>>;

const one = async (c: Pg, sql: string) => Object.values((await c.query(sql)).rows[0] ?? {})[0];

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("RESET, RESET ALL and SET TO DEFAULT go back to the startup parameters", async () => {
      const r = await psql(server(), [
        "-c",
        "set work_mem = '1MB'",
        "-c",
        "reset all",
        "-c",
        "show work_mem",
        "-c",
        "set work_mem = '2MB'",
        "-c",
        "reset work_mem",
        "-c",
        "show work_mem",
        "-c",
        "set work_mem = '3MB'",
        "-c",
        "set work_mem to default",
        "-c",
        "show work_mem",
        "-c",
        "set search_path = public",
        "-c",
        "reset search_path",
        "-c",
        "show search_path",
        "-c",
        "select reset_val, source from pg_settings where name = 'work_mem'",
      ], { env: { PGOPTIONS: "-c work_mem=8MB -c search_path=reset_schema,public" } });
      expect(r.code).toBe(0);
      expect(r.out.trim().split("\n").filter((l) => !/^(SET|RESET)$/.test(l))).toEqual([
        "8MB",
        "8MB",
        "8MB",
        "reset_schema,public",
        "8192|client",
      ]);
      // A session that started without them gets the server's.
      const plain = await pgClient(server());
      expect(await one(plain, "show work_mem")).toBe("4MB");
      await plain.query("set work_mem = '16MB'");
      await plain.query("reset all");
      expect(await one(plain, "show work_mem")).toBe("4MB");
      expect(await one(plain, "select reset_val from pg_settings where name = 'work_mem'")).toBe(
        "4096",
      );
      await plain.end();
    });

    test("a startup parameter wins over the same one in the packet's options, as in PostgreSQL", async () => {
      // PostgreSQL applies the `options` switches first and the packet's own
      // parameters after them; lib/pq sends client_encoding=UTF8 beside a
      // user's `options='-c client_encoding=SQL_ASCII'` and expects UTF8.
      const c = new pg.Client({
        ...pgConfig(server(), {
          options: "-c application_name=from_options -c work_mem=3MB -c client_encoding=LATIN1",
        }),
        application_name: "explicit",
        client_encoding: "UTF8",
      });
      await c.connect();
      expect(
        (await c.query(
          "select current_setting('application_name') as a, current_setting('work_mem') as w, current_setting('client_encoding') as e",
        )).rows,
      ).toEqual([{ a: "explicit", w: "3MB", e: "UTF8" }]);
      // And RESET goes back to that start.
      await c.query("set application_name = 'changed'");
      await c.query("reset all");
      expect(await one(c, "show application_name")).toBe("explicit");
      await c.end();
    });

    test("sessions that alternate each reset to their own start", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      await b.query("select 1");
      const c = new pg.Client({
        host: server().host,
        port: server().port,
        user: "postgres",
        database: "postgres",
        options: "-c work_mem=8MB -c statement_timeout=7s",
      });
      await c.connect();
      for (let round = 0; round < 3; round++) {
        for (const s of [a, b, c]) {
          await s.query("set work_mem = '2MB'; set statement_timeout = '3s'");
        }
        for (const s of [a, b, c]) await s.query("reset all");
        expect(await one(a, "show work_mem")).toBe("4MB");
        expect(await one(c, "show work_mem")).toBe("8MB");
        expect(await one(b, "show statement_timeout")).toBe("0");
        expect(await one(c, "show statement_timeout")).toBe("7s");
        await c.query("set work_mem = '2MB'");
        await c.query("reset work_mem");
        expect(await one(c, "show work_mem")).toBe("8MB");
        expect(await one(b, "show work_mem")).toBe("4MB");
      }
      await c.end();
    });

    test("the server's search_path is PostgreSQL's: a role's own schema comes first", async () => {
      const admin = await pgClient(server());
      expect(await one(admin, "show search_path")).toBe('"$user", public');
      await admin.query("create role own_schema_role login");
      await admin.query("create schema own_schema_role authorization own_schema_role");
      const r = await pgClient(server(), { user: "own_schema_role" });
      await r.query("create table where_am_i (x int)");
      await r.query("set search_path = public");
      await r.query("reset search_path");
      expect(await one(r, "select current_schema()")).toBe("own_schema_role");
      expect(await one(admin, "select current_schema()")).toBe("public");
      expect(await one(admin, "select schemaname from pg_tables where tablename = 'where_am_i'"))
        .toBe("own_schema_role");
      await r.end();
    });

    test("RESET goes back to the role's and the database's ALTER … SET values", async () => {
      const admin = await pgClient(server());
      await admin.query("create role reset_role login");
      await admin.query("create schema reset_role_schema authorization reset_role");
      await admin.query("alter role reset_role set search_path = reset_role_schema, public");
      await admin.query("alter role reset_role set work_mem = '6MB'");
      const r = await pgClient(server(), { user: "reset_role" });
      expect(await one(r, "show search_path")).toBe("reset_role_schema, public");
      await r.query("set search_path = public; set work_mem = '1MB'");
      await r.query("reset all");
      expect(await one(r, "show search_path")).toBe("reset_role_schema, public");
      expect(await one(r, "show work_mem")).toBe("6MB");
      await r.query("create table in_own_schema (x int)");
      expect(await one(r, "select schemaname from pg_tables where tablename = 'in_own_schema'"))
        .toBe("reset_role_schema");
      expect(await one(admin, "show work_mem")).toBe("4MB");
      await r.end();
    });
  });
}
