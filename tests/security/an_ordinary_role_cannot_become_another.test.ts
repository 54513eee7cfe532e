/**
 * The role boundary on the embedded engine. Every session runs on one PGlite
 * backend that authenticated as the bootstrap superuser; PostgreSQL's rule
 * ("only a superuser may SET SESSION AUTHORIZATION another role") must
 * still be decided by the role the client logged in as. An ordinary role
 * `mallory` tries every spelling that reaches session_authorization, and
 * each must fail with PostgreSQL's error, leave no effect (no superuser
 * attribute, no table, no read of pg_authid), and leave the next session of
 * the same role as that role. A superuser keeps PostgreSQL's behaviour.
 * Run against the default server and the in-process adapter.
 */

import { describe, expect, test } from "bun:test";
import postgres from "postgres";
import { pgClient, psql, sharedServer, useSqlServers } from "../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

type Pg = Awaited<ReturnType<typeof pgClient>>;

/** The SQLSTATE a query fails with (null when it succeeds). */
async function failsWith(c: Pg, sql: string, values?: unknown[]): Promise<string | null> {
  try {
    await c.query(sql, values);
    return null;
  } catch (e) {
    return (e as { code?: string }).code ?? "no code";
  }
}

/** Who a session is, as PostgreSQL reports it. */
async function identity(c: Pg): Promise<{ cu: string; su: string; sup: string }> {
  const r = await c.query(
    "select current_user as cu, session_user as su, current_setting('is_superuser') as sup",
  );
  return r.rows[0];
}

const MALLORY = { cu: "mallory", su: "mallory", sup: "off" };

/** Waits until `c`'s database lists role `name` (the engine copies roles in the background). */
async function waitForRole(c: Pg, name: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await c.query("select count(*)::int as n from pg_roles where rolname = $1", [name]);
    if (r.rows[0].n === 1) return;
    await Bun.sleep(50);
  }
  throw new Error(`role ${name} never reached the database`);
}

/** Each attack: what mallory sends, and the SQLSTATE PostgreSQL's rules give it. */
const ATTACKS: Array<[string, string, string | null]> = [
  ["SET SESSION AUTHORIZATION", "SET SESSION AUTHORIZATION postgres", "42501"],
  ["SET session_authorization =", "SET session_authorization = 'postgres'", "42501"],
  ["SET LOCAL", "BEGIN; SET LOCAL session_authorization = 'postgres'; COMMIT", "42501"],
  [
    "set_config from SQL",
    "select pg_catalog.set_config('session_authorization', 'postgres', false)",
    "42501",
  ],
  [
    "set_config in a DO block",
    "DO $$ begin perform set_config('session_authorization','postgres',false); end $$",
    "42501",
  ],
  [
    "PL/pgSQL EXECUTE of a built string",
    "DO $$ begin execute 'set session ' || 'authorization ' || quote_ident('postgres'); end $$",
    "42501",
  ],
  [
    "a function's SET clause",
    "create function pg_temp.as_postgres() returns text language sql" +
    " set session_authorization = 'postgres' as $$ select current_user::text $$",
    "0A000",
  ],
  // PostgreSQL's reset goes back to the role that authenticated: mallory.
  ["RESET SESSION AUTHORIZATION", "RESET SESSION AUTHORIZATION", null],
  ["SET … TO DEFAULT", "SET SESSION AUTHORIZATION DEFAULT", null],
  ["RESET inside a DO block", "DO $$ begin execute 'reset session authorization'; end $$", "0A000"],
  ["set_config to NULL", "select set_config('session_authorization', NULL, false)", "0A000"],
  ["SET ROLE to a role it is not a member of", "SET ROLE postgres", "42501"],
  [
    "the escalation and its payload in one Query",
    "SET SESSION AUTHORIZATION postgres; ALTER ROLE mallory SUPERUSER; CREATE TABLE pwned (x int)",
    "42501",
  ],
  [
    "set_config then DDL in one function body",
    "DO $$ begin perform set_config('session_authorization','postgres',false);" +
    " execute 'alter role mallory superuser'; execute 'create table pwned (x int)'; end $$",
    "42501",
  ],
  [
    "a SECURITY DEFINER function of a superuser that sets it",
    "select public.definer_sets_authorization()",
    "42501",
  ],
  ["reading pg_authid", "select rolpassword from pg_authid", "42501"],
  ["ALTER ROLE … SUPERUSER of itself", "ALTER ROLE mallory SUPERUSER", "42501"],
];

const SETUP = [
  "create role mallory login",
  "create role reader nologin",
  "grant reader to mallory",
  "create function public.definer_sets_authorization() returns text language plpgsql" +
  " security definer as $$ begin perform set_config('session_authorization', 'postgres', false);" +
  " return current_user; end $$",
  "grant execute on function public.definer_sets_authorization() to mallory",
].join("; ");

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("every spelling that reaches session_authorization fails for an ordinary role and leaves no effect", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query(SETUP);
      const mallory = await pgClient(s, { user: "mallory" });
      expect(await identity(mallory)).toEqual(MALLORY);

      for (const [what, sql, code] of ATTACKS) {
        expect({ what, code: await failsWith(mallory, sql) }).toEqual({ what, code });
        if (code !== null) await mallory.query("ROLLBACK").catch(() => {});
        expect({ what, who: await identity(mallory) }).toEqual({ what, who: MALLORY });
      }
      // The extended protocol with parameters: the same check.
      expect(
        await failsWith(mallory, "select set_config($1, $2, false)", [
          "session_authorization",
          "postgres",
        ]),
      ).toBe("42501");
      expect(await identity(mallory)).toEqual(MALLORY);

      // Nothing took effect.
      const effects = await admin.query(
        "select (select rolsuper from pg_roles where rolname = 'mallory') as sup," +
          " to_regclass('public.pwned') is null as no_table",
      );
      expect(effects.rows).toEqual([{ sup: false, no_table: true }]);

      // What mallory may do, it still may: set its own name, take a granted role.
      expect(await failsWith(mallory, "SET SESSION AUTHORIZATION mallory")).toBeNull();
      await mallory.query("SET ROLE reader");
      expect((await mallory.query("select current_user as u")).rows).toEqual([{ u: "reader" }]);
      await mallory.query("RESET ROLE");
      expect(await identity(mallory)).toEqual(MALLORY);
      await mallory.end();

      // The next session of the same role starts as that role.
      const again = await pgClient(s, { user: "mallory" });
      expect(await identity(again)).toEqual(MALLORY);
      await again.end();

      // Other sessions were never disturbed.
      expect(await identity(admin)).toEqual({ cu: "postgres", su: "postgres", sup: "on" });
      await admin.end();
    });

    test("a setting's value is only a value when another session left standard_conforming_strings off", async () => {
      // The engine puts each session's settings back with SQL it writes; it
      // is parsed with the settings the backend carries then, the last
      // session's. Quoted as '…' with the backslash as is, this value closed
      // its literal early under standard_conforming_strings = off, and what
      // followed ran as the superuser the switch runs as.
      const s = server();
      const admin = await pgClient(s);
      await admin.query("create role quoter login");
      const value = "x\\', false);create role quoted_super superuser;--";
      const a = await pgClient(s, { user: "quoter" });
      const b = await pgClient(s, { user: "quoter" });
      await b.query(`SET app.x = $v$${value}$v$`);
      await a.query("SET standard_conforming_strings = off");
      expect((await a.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
      expect((await b.query("SHOW app.x")).rows).toEqual([{ "app.x": value }]);
      expect(await identity(b)).toEqual({ cu: "quoter", su: "quoter", sup: "off" });
      expect(
        (await admin.query(
          "select count(*)::int as n from pg_roles where rolname = 'quoted_super'",
        ))
          .rows,
      ).toEqual([{ n: 0 }]);
      for (const x of [a, b, admin]) await x.end();
    });

    test("a database owner's operators on its search_path never run in the engine's own work as the superuser", async () => {
      // The engine copies roles into every database's engine as the
      // bootstrap superuser, on a backend that still carries the settings of
      // the session that ran there last; its SQL compares oids with `=`.
      // An exact-match `=`(oid, integer) in a schema on that session's
      // search_path would win over pg_catalog's (CVE-2018-1058's pattern).
      const s = server();
      const admin = await pgClient(s);
      await admin.query("create role owner_o login");
      await admin.query("create database owned_db owner owner_o");
      const o = await pgClient(s, { user: "owner_o", database: "owned_db" });
      await o.query("create schema trap");
      await o.query(
        "create function trap.eq(oid, int4) returns bool language plpgsql as $$ begin" +
          " execute 'create table if not exists trap.ran(who text)';" +
          " insert into trap.ran values (current_user);" +
          " return $1 operator(pg_catalog.=) $2::oid; end $$",
      );
      await o.query("create operator trap.= (leftarg = oid, rightarg = int4, function = trap.eq)");
      await o.query(
        "create operator public.= (leftarg = oid, rightarg = int4, function = trap.eq)",
      );
      await o.query("set search_path = trap, public, pg_catalog");
      expect((await o.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
      // Roles change: the engine of owned_db gets the new list.
      await admin.query("create role copied_role");
      const c = await pgClient(s, { user: "owner_o", database: "owned_db" });
      await waitForRole(c, "copied_role");
      expect((await c.query("select to_regclass('trap.ran') is null as none")).rows)
        .toEqual([{ none: true }]);
      // The session's own search_path is still its own.
      expect((await o.query("show search_path")).rows).toEqual([
        { search_path: "trap, public, pg_catalog" },
      ]);
      for (const x of [o, c, admin]) await x.end();
    });

    test("ALTER ROLE … SET session_authorization does not carry a role into its next session", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("create role eve login");
      const eve = await pgClient(s, { user: "eve" });
      // PostgreSQL accepts the setting (only checked when applied) ...
      await eve.query("ALTER ROLE eve SET session_authorization = 'postgres'").catch(() => {});
      await eve.end();
      // ... and a login never becomes another role by it.
      const next = await pgClient(s, { user: "eve" });
      expect(await identity(next)).toEqual({ cu: "eve", su: "eve", sup: "off" });
      expect(await failsWith(next, "select count(*) from pg_authid")).toBe("42501");
      await next.end();
      await admin.end();
    });

    test("-c session_authorization in the startup packet's options does not change who logs in", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("create role oscar login");
      await admin.end();
      const r = await psql(s, [
        "-U",
        "oscar",
        "-At",
        "-c",
        "select current_user, session_user, current_setting('is_superuser')",
      ], { env: { PGOPTIONS: "-c session_authorization=postgres" } });
      expect(r.out.trim()).toBe("oscar|oscar|off");
    });

    test("a superuser keeps PostgreSQL's SET SESSION AUTHORIZATION, and psql sees PostgreSQL's message", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("create role trudy login");
      await admin.query("SET SESSION AUTHORIZATION trudy");
      expect(await identity(admin)).toEqual({ cu: "trudy", su: "trudy", sup: "off" });
      // The authenticated role is still the superuser: it may switch back,
      // by name or by RESET.
      await admin.query("SET SESSION AUTHORIZATION postgres");
      expect(await identity(admin)).toEqual({ cu: "postgres", su: "postgres", sup: "on" });
      await admin.query("SET SESSION AUTHORIZATION trudy");
      await admin.query("RESET SESSION AUTHORIZATION");
      expect(await identity(admin)).toEqual({ cu: "postgres", su: "postgres", sup: "on" });
      await admin.end();

      const r = await psql(s, ["-U", "trudy", "-c", "SET SESSION AUTHORIZATION postgres"]);
      expect(r.code).not.toBe(0);
      expect(r.err).toContain('ERROR:  permission denied to set session authorization "postgres"');
    });

    test("RESET SESSION AUTHORIZATION answers RESET and SET … DEFAULT answers SET, as in PostgreSQL, alone or among other statements", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("create role tagged login").catch(() => {});
      const tags = async (sql: string) => {
        const r = await admin.query(sql);
        return (Array.isArray(r) ? r : [r]).map((x) => x.command);
      };
      await admin.query("SET SESSION AUTHORIZATION tagged");
      expect(await tags("RESET SESSION AUTHORIZATION")).toEqual(["RESET"]);
      await admin.query("SET SESSION AUTHORIZATION tagged");
      expect(await tags("SET SESSION AUTHORIZATION DEFAULT")).toEqual(["SET"]);
      expect(
        await tags(
          "SET SESSION AUTHORIZATION tagged; select 1; reset session authorization; select current_user",
        ),
      ).toEqual(["SET", "SELECT", "RESET", "SELECT"]);
      expect(await identity(admin)).toEqual({ cu: "postgres", su: "postgres", sup: "on" });
      await admin.end();
      // An ordinary role's RESET goes back to itself, and says so.
      const r = await psql(s, ["-U", "tagged", "-c", "RESET SESSION AUTHORIZATION"]);
      expect([r.code, r.out.trim(), r.err]).toEqual([0, "RESET", ""]);
    });

    test("RESET SESSION AUTHORIZATION answers RESET in the extended protocol too, prepared or not (postgres.js)", async () => {
      const s = server();
      const sql = postgres({
        host: "127.0.0.1",
        port: s.port,
        user: "postgres",
        database: "postgres",
        max: 1,
        onnotice: () => {},
      });
      try {
        await sql`create role tagged_ext login`.catch(() => {});
        const tagsOf = async () => {
          const out: string[] = [];
          // Named and prepared once, then Bind and Execute alone.
          for (let i = 0; i < 2; i++) {
            await sql.unsafe("SET SESSION AUTHORIZATION tagged_ext");
            out.push((await sql`reset session authorization`).command);
            expect((await sql`select current_user as u`)[0]!.u).toBe("postgres");
          }
          await sql.unsafe("SET SESSION AUTHORIZATION tagged_ext");
          out.push(
            (await sql.unsafe("RESET SESSION AUTHORIZATION", [], { prepare: false })).command,
          );
          out.push((await sql`set session authorization default`).command);
          out.push((await sql`select 1 as x`).command);
          return out;
        };
        expect(await tagsOf()).toEqual(["RESET", "RESET", "RESET", "SET", "SELECT"]);
      } finally {
        await sql.end({ timeout: 1 });
      }
    });
  });
}
