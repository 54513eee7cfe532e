/**
 * Every parameter of pg_settings that a session can SET (context user or
 * superuser): session A sets it to a valid value other than the current one,
 * then session B and a brand-new session C run queries and still see their
 * own value, and A still sees its own. Parameters are taken in batches, so
 * the whole walk is a few rounds of settings switches.
 *
 * Left out, and why: see SKIP. Parameters whose SET PostgreSQL itself
 * refuses here (a value out of what the build supports) are reported by the
 * test as "could not be set" and must not disturb anyone either.
 */

import { expect, test } from "bun:test";
import pg from "pg";
import {
  connectError,
  pgClient,
  pgConfig,
  sharedServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";

useSqlServers();
const server = sharedServer();

/** Parameters not walked, with the reason. */
const SKIP: Record<string, string> = {
  exit_on_error: "any error would end the connection",
  transaction_isolation: "follows the transaction; walked by the statement-shape test",
  transaction_read_only: "follows the transaction; walked by the statement-shape test",
  transaction_deferrable: "follows the transaction; walked by the statement-shape test",
};

/** Values for string parameters (no enumvals or range to pick from). */
const STRINGS: Record<string, string> = {
  application_name: "walker",
  // node-postgres decodes UTF8; the walk's answers are ASCII, which reads the same.
  client_encoding: "SQL_ASCII",
  datestyle: "SQL, DMY",
  timezone: "Asia/Tokyo",
  search_path: "pg_catalog, public",
  default_text_search_config: "pg_catalog.simple",
  default_tablespace: "pg_default",
  temp_tablespaces: "pg_default",
  lc_messages: "POSIX",
  lc_monetary: "POSIX",
  lc_numeric: "POSIX",
  lc_time: "POSIX",
  log_line_prefix: "%m walker ",
  backtrace_functions: "walker_nothing",
  restrict_nonsystem_relation_kind: "foreign-table",
  synchronize_seqscans: "off",
  local_preload_libraries: "",
  session_preload_libraries: "",
  createrole_self_grant: "set",
  debug_io_direct: "",
  timezone_abbreviations: "Australia",
  wal_consistency_checking: "heap",
};

interface Param {
  name: string;
  vartype: string;
  setting: string;
  enumvals: string[] | null;
  min_val: string | null;
  max_val: string | null;
}

/** A valid value other than `p.setting`, or null when there is none to pick. */
function otherValue(p: Param): string | null {
  switch (p.vartype) {
    case "bool":
      return p.setting === "on" ? "off" : "on";
    case "enum": {
      // The last one: for message levels that is the quietest.
      const vals = (p.enumvals ?? []).filter((v) => v !== p.setting);
      return vals.at(-1) ?? null;
    }
    case "integer":
    case "real": {
      if (p.max_val !== null && p.max_val !== p.setting) return p.max_val;
      if (p.min_val !== null && p.min_val !== p.setting) return p.min_val;
      return null;
    }
    default: {
      const v = STRINGS[p.name.toLowerCase()];
      return v === undefined || v === p.setting ? null : v;
    }
  }
}

/** pg_settings' setting column for these names, as one session sees them. */
async function settingsOf(c: pg.Client, names: string[]): Promise<Record<string, string>> {
  const r = await c.query(
    "SELECT name, setting FROM pg_catalog.pg_settings WHERE name = ANY($1::text[])",
    [names],
  );
  return Object.fromEntries(r.rows.map((row) => [row.name, row.setting]));
}

/**
 * Walks the parameters of `contexts`: A sets a batch, B and a new session C
 * (the bootstrap superuser) must not see it, A must still see it.
 */
async function walkSettings(a: pg.Client, b: pg.Client, contexts: string[]): Promise<void> {
  const s = server();
  const params = (await b.query(
    "SELECT name, vartype, setting, enumvals, min_val, max_val FROM pg_catalog.pg_settings" +
      " WHERE context = ANY($1::text[]) ORDER BY name",
    [contexts],
  )).rows as Param[];
  expect(params.length).toBeGreaterThan(100);
  const walk: Array<[Param, string]> = [];
  const notWalked: Record<string, string> = {};
  for (const p of params) {
    const skip = SKIP[p.name.toLowerCase()];
    const v = otherValue(p);
    if (skip !== undefined) notWalked[p.name] = skip;
    else if (v === null) notWalked[p.name] = "no other valid value to pick";
    else walk.push([p, v]);
  }
  const baseline = await settingsOf(b, params.map((p) => p.name));
  const refused: Record<string, string> = {};
  const BATCH = 40;
  for (let i = 0; i < walk.length; i += BATCH) {
    const batch = walk.slice(i, i + BATCH);
    const set: string[] = [];
    for (const [p, v] of batch) {
      try {
        await a.query("SELECT pg_catalog.set_config($1, $2, false)", [p.name, v]);
        set.push(p.name);
      } catch (e) {
        refused[p.name] = `${(e as { code: string }).code} ${(e as Error).message}`;
      }
    }
    const mine = await settingsOf(a, set);
    for (const name of set) {
      expect({ name, changed: mine[name] !== baseline[name] }).toEqual({ name, changed: true });
    }
    // B, then a brand-new C: they run queries and see their own values.
    const theirs = Object.fromEntries(set.map((n) => [n, baseline[n]]));
    expect(await settingsOf(b, set)).toEqual(theirs);
    const c = await pgClient(s);
    expect((await c.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    expect(await settingsOf(c, set)).toEqual(theirs);
    await c.end();
    // And A still has its own.
    expect(await settingsOf(a, set)).toEqual(mine);
    await a.query("RESET ALL");
  }
  console.log(
    `${contexts.join("/")}: walked ${walk.length} of ${params.length} parameters; not walked: ${
      JSON.stringify(notWalked, null, 1)
    }; refused by PostgreSQL: ${JSON.stringify(refused, null, 1)}`,
  );
  // What PostgreSQL refused to set here must be a handful of build limits, not the walk's bulk.
  expect(Object.keys(refused).length).toBeLessThan(walk.length / 10);
  expect(a.asyncErrors).toEqual([]);
  expect(b.asyncErrors).toEqual([]);
}

test("a parameter one session sets is never seen by another, for every parameter a session can SET", async () => {
  const s = server();
  await walkSettings(await pgClient(s), await pgClient(s), ["user", "superuser"]);
});

test("the same for an ordinary role's session, over the parameters it may SET", async () => {
  const s = server();
  const b = await pgClient(s);
  await b.query("CREATE ROLE walk_user LOGIN");
  await walkSettings(await pgClient(s, { user: "walk_user" }), b, ["user"]);
});

test("a custom setting another session set reads NULL with current_setting(name, true), as a name never seen, and '' once the session made it itself; SHOW and current_setting(name) fail with 42704", async () => {
  const s = server();
  const a = await pgClient(s);
  const b = await pgClient(s);
  const read = async (c: pg.Client, name: string) =>
    (await c.query("select current_setting($1, true) as v", [name])).rows[0].v;
  expect(await read(b, "app.tenant")).toBeNull();
  await a.query("set app.tenant = '42'");
  expect(await read(a, "app.tenant")).toBe("42");
  // The idiom of row-level security policies: a cast of the setting.
  const policy = await b.query(
    "select current_setting('app.tenant', true)::int as tenant",
  );
  expect(policy.rows[0].tenant).toBeNull();
  await b.query("begin");
  await b.query("set local app.tenant = '7'");
  expect(await read(b, "app.tenant")).toBe("7");
  await b.query("commit");
  expect(await read(a, "app.tenant")).toBe("42");
  // b's backend has the placeholder now, as PostgreSQL's keeps one once
  // made: back at its reset value, '' (not NULL), whoever else set it.
  expect(await read(b, "app.tenant")).toBe("");
  await a.query("reset app.tenant");
  expect(await read(a, "app.tenant")).toBe("");
  expect((await b.query("show app.tenant")).rows[0]["app.tenant"]).toBe("");
  // A session that never set it: a name its backend never saw, as in PostgreSQL.
  const c = await pgClient(s);
  expect(await read(c, "app.tenant")).toBeNull();
  await a.query("set app.tenant = '43'");
  for (const sql of ["show app.tenant", "select current_setting('app.tenant')"]) {
    const e = await c.query(sql).then(() => null, (e) => e);
    expect(e?.code).toBe("42704");
    expect(e?.message).toBe('unrecognized configuration parameter "app.tenant"');
  }
  expect((await c.query("select 1 as one")).rows[0].one).toBe(1);
  // A name another session SET to '' explicitly: still never seen here.
  await a.query("set app.empty = ''");
  expect(await read(a, "app.empty")).toBe("");
  expect(await read(c, "app.empty")).toBeNull();
  const empty = await c.query("show app.empty").then(() => null, (e) => e);
  expect(empty?.code).toBe("42704");
  expect(await read(a, "app.empty")).toBe("");
  await c.end();
  // Without missing_ok, and for parameters that are not custom, as PostgreSQL.
  expect(await read(b, "work_mem")).toBe("4MB");
  expect(await read(b, "no_such_parameter")).toBeNull();
  await a.end();
  await b.end();
});

test("a custom setting given at connection (options -c app.tenant=…) stays the session's own after other sessions ran, and a row-level security policy on it shows each tenant its rows only", async () => {
  const s = server();
  const admin = await pgClient(s);
  await admin.query("create role tenant_app login");
  await admin.query("create table tenant_rows (tenant text, note text)");
  await admin.query("insert into tenant_rows values ('t1', 'one'), ('t2', 'two')");
  await admin.query("grant select on tenant_rows to tenant_app");
  await admin.query("alter table tenant_rows enable row level security");
  await admin.query(
    "create policy by_tenant on tenant_rows using (tenant = current_setting('app.tenant', true))",
  );
  const t1 = await pgClient(s, { user: "tenant_app", options: "-c app.tenant=t1" });
  const t2 = await pgClient(s, { user: "tenant_app", options: "-c app.tenant=t2" });
  const none = await pgClient(s, { user: "tenant_app" });
  const notes = async (c: pg.Client) =>
    (await c.query("select note from tenant_rows order by note")).rows.map((r) => r.note);
  // Interleaved, so that each one's statement follows another's on the engine.
  for (let round = 0; round < 2; round++) {
    expect(await notes(t1)).toEqual(["one"]);
    expect(await notes(t2)).toEqual(["two"]);
    expect(await notes(none)).toEqual([]);
    expect((await t1.query("show app.tenant")).rows[0]["app.tenant"]).toBe("t1");
    expect(
      (await none.query("select current_setting('app.tenant', true) as v")).rows[0].v,
    ).toBeNull();
  }
  // A pgts setting given so is the session's own too: the next session does not inherit it.
  const waits = await pgClient(s, { options: "-c pgts.engine_wait_timeout=700" });
  expect((await waits.query("show pgts.engine_wait_timeout")).rows[0]).toEqual({
    "pgts.engine_wait_timeout": "700",
  });
  await waits.end();
  const after = await pgClient(s);
  expect(
    (await after.query("select current_setting('pgts.engine_wait_timeout', true) as v")).rows[0]
      .v,
  ).toBeNull();
  await Promise.all([t1.end(), t2.end(), none.end(), after.end()]);
  await admin.query("drop table tenant_rows");
  await admin.query("drop role tenant_app");
  await admin.end();
});

test("a custom setting a function sets (set_config in PL/pgSQL, SET in its body, SET by EXECUTE) is the session's own: no other session reads it, and the session keeps it after others ran", async () => {
  const s = server();
  const a = await pgClient(s);
  const b = await pgClient(s);
  await a.query(
    "create function fn_tenant(t text) returns void language plpgsql as " +
      "$$ begin perform set_config('app.fn_tenant', t, false); end $$",
  );
  await a.query(
    "create function fn_static() returns void language plpgsql as $$ begin set app.fn_static = 'on'; end $$",
  );
  await a.query(
    "create function fn_dynamic(v text) returns void language plpgsql as " +
      "$$ begin execute format('set app.fn_dynamic = %L', v); end $$",
  );
  const read = async (c: pg.Client) =>
    (await c.query(
      "select current_setting('app.fn_tenant', true) as t, current_setting('app.fn_static', true) as s, " +
        "current_setting('app.fn_dynamic', true) as d",
    )).rows[0];
  // Twice: the second time PL/pgSQL runs its cached plans.
  for (let round = 0; round < 2; round++) {
    await a.query("select fn_tenant('a'), fn_static(), fn_dynamic('a')");
    expect(await read(b)).toEqual(
      round === 0 ? { t: null, s: null, d: null } : { t: "b", s: null, d: null },
    );
    expect(await read(a)).toEqual({ t: "a", s: "on", d: "a" });
    const c = await pgClient(s);
    expect(await read(c)).toEqual({ t: null, s: null, d: null });
    await c.end();
    await b.query("select fn_tenant('b')");
    expect(await read(b)).toEqual({ t: "b", s: null, d: null });
    expect(await read(a)).toEqual({ t: "a", s: "on", d: "a" });
  }
  await a.query(
    "drop function fn_tenant(text); drop function fn_static(); drop function fn_dynamic(text)",
  );
  await Promise.all([a.end(), b.end()]);
});

test("a startup setting only the engine can check (a tablespace, a text search configuration, a role to become) that it refuses fails the login itself with PostgreSQL's error, its detail included, and no other session notices", async () => {
  const s = server();
  const other = await pgClient(s);
  await other.query("create role login_checked login");
  await other.query("create role login_checked_group");
  const cases: Array<[string, Record<string, string>]> = [
    ["-c default_tablespace=no_such_space", {
      code: "22023",
      message: 'invalid value for parameter "default_tablespace": "no_such_space"',
      detail: 'Tablespace "no_such_space" does not exist.',
    }],
    ["-c default_text_search_config=no_such_cfg", {
      code: "22023",
      message: 'invalid value for parameter "default_text_search_config": "no_such_cfg"',
    }],
    ["-c role=login_checked_group", {
      code: "42501",
      message: 'permission denied to set role "login_checked_group"',
    }],
    ["-c default_table_access_method=no_such_am", {
      code: "22023",
      message: 'invalid value for parameter "default_table_access_method": "no_such_am"',
      detail: 'Table access method "no_such_am" does not exist.',
    }],
  ];
  for (const [options, want] of cases) {
    // connect() itself fails: no ReadyForQuery came.
    const failure = await connectError(s, { user: "login_checked", options });
    expect({ options, failure }).toMatchObject({
      options,
      failure: { severity: "FATAL", ...want },
    });
  }
  expect(
    (await other.query(
      "select current_setting('default_tablespace') as t, current_user as u, current_setting('role') as r",
    )).rows,
  ).toEqual([{ t: "", u: "postgres", r: "none" }]);
  // Good values of the same parameters log in and hold.
  await other.query("grant login_checked_group to login_checked");
  const c = await pgClient(s, {
    user: "login_checked",
    options: "-c role=login_checked_group -c default_text_search_config=pg_catalog.simple",
  });
  expect((await c.query("select current_user as u, to_tsvector('cats')::text as v")).rows)
    .toEqual([{ u: "login_checked_group", v: "'cats':1" }]);
  await c.end();
  await other.end();
});

test("a login whose startup packet the engine checks still gets its role's stored setting that no longer holds as a WARNING, and the default", async () => {
  const s = server();
  const admin = await pgClient(s);
  await admin.query("create role stale_checked login");
  await admin.query("create text search configuration public.checked_cfg (copy = simple)");
  await admin.query(
    "alter role stale_checked set default_text_search_config = 'public.checked_cfg'",
  );
  await admin.query("drop text search configuration public.checked_cfg");
  const c = new pg.Client({
    ...pgConfig(s, { user: "stale_checked" }),
    options: "-c default_tablespace=pg_default",
  });
  c.on("error", () => {});
  const warnings: string[] = [];
  c.on("notice", (n) => warnings.push(`${n.severity}: ${n.message}`));
  await c.connect();
  expect(
    (await c.query(
      "select current_setting('default_tablespace') as t, to_tsvector('cats')::text as v",
    )).rows,
  ).toEqual([{ t: "pg_default", v: "'cat':1" }]);
  expect(warnings).toEqual([
    'WARNING: invalid value for parameter "default_text_search_config": "public.checked_cfg"',
  ]);
  await c.end();
  await admin.end();
});

test("a role's stored setting that no longer holds (ALTER ROLE … SET naming a dropped text search configuration) is a WARNING at its login, as in PostgreSQL, and the role still logs in", async () => {
  const s = server();
  const admin = await pgClient(s);
  await admin.query("create role stale_defaults login");
  await admin.query("create text search configuration public.gone_cfg (copy = simple)");
  await admin.query("alter role stale_defaults set default_text_search_config = 'public.gone_cfg'");
  await admin.query("drop text search configuration public.gone_cfg");
  // PostgreSQL sends the WARNING during the login, pgts with the first answer.
  const c = new pg.Client(pgConfig(s, { user: "stale_defaults" }));
  const warnings: string[] = [];
  c.on("notice", (n) => warnings.push(`${n.severity}: ${n.message}`));
  await c.connect();
  expect((await c.query("select current_user as u, 1 as one")).rows)
    .toEqual([{ u: "stale_defaults", one: 1 }]);
  expect(warnings).toEqual([
    'WARNING: invalid value for parameter "default_text_search_config": "public.gone_cfg"',
  ]);
  // Asked for in the startup packet instead, the same value ends the login.
  const refused = await pgClient(s, {
    user: "stale_defaults",
    options: "-c default_text_search_config=public.gone_cfg",
  }).then((d) => d.query("select 1")).then(() => null, (e) => e as { severity?: string });
  expect(refused).toMatchObject({ severity: "FATAL" });
  await c.end();
  await admin.end();
});

test("a role's stored setting that no longer holds leaves its sessions the server's default, as in PostgreSQL: SHOW, what uses it, RESET and DISCARD ALL give the default, and every login warns", async () => {
  const s = server();
  const admin = await pgClient(s);
  await admin.query("create role stale_fallback login");
  await admin.query("create text search configuration public.fallback_cfg (copy = simple)");
  await admin.query(
    "alter role stale_fallback set default_text_search_config = 'public.fallback_cfg'",
  );
  await admin.query("drop text search configuration public.fallback_cfg");
  const serverDefault = (await admin.query("show default_text_search_config")).rows[0]
    .default_text_search_config;
  // The session the backend carried before has a value of its own, which must not stay either.
  await admin.query("set default_text_search_config = 'pg_catalog.simple'");
  const warning =
    'WARNING: invalid value for parameter "default_text_search_config": "public.fallback_cfg"';
  for (const login of [1, 2]) {
    const c = new pg.Client(pgConfig(s, { user: "stale_fallback" }));
    c.on("error", () => {});
    const warnings: string[] = [];
    c.on("notice", (n) => warnings.push(`${n.severity}: ${n.message}`));
    await c.connect();
    const seen = async () => {
      const r = await c.query(
        "select current_setting('default_text_search_config') as cfg, to_tsvector('cats')::text as v",
      );
      // Another session runs between, so that the next statement's settings are switched to again.
      await admin.query("select 1");
      return r.rows[0];
    };
    // english stems "cats"; the dropped configuration was simple's copy, which does not.
    const want = { cfg: serverDefault, v: "'cat':1" };
    expect({ login, ...(await seen()) }).toEqual({ login, ...want });
    await c.query("reset default_text_search_config");
    expect({ login, ...(await seen()) }).toEqual({ login, ...want });
    await c.query("discard all");
    expect({ login, ...(await seen()) }).toEqual({ login, ...want });
    expect({ login, warnings }).toEqual({ login, warnings: [warning] });
    await c.end();
  }
  await admin.end();
});

test("a role's stored setting for one database that no longer holds (ALTER ROLE … IN DATABASE … SET) leaves the session the role's own stored value under it, as PostgreSQL's", async () => {
  const s = server();
  const admin = await pgClient(s);
  await admin.query("create role stale_layered login");
  await admin.query("create text search configuration public.layered_cfg (copy = simple)");
  await admin.query(
    "alter role stale_layered set default_text_search_config = 'pg_catalog.simple'",
  );
  await admin.query(
    "alter role stale_layered in database postgres set default_text_search_config = 'public.layered_cfg'",
  );
  await admin.query("drop text search configuration public.layered_cfg");
  const c = new pg.Client(pgConfig(s, { user: "stale_layered" }));
  c.on("error", () => {});
  const warnings: string[] = [];
  c.on("notice", (n) => warnings.push(`${n.severity}: ${n.message}`));
  await c.connect();
  const seen = async () => {
    const r = await c.query("show default_text_search_config");
    await admin.query("select 1");
    return r.rows[0].default_text_search_config;
  };
  expect(await seen()).toBe("pg_catalog.simple");
  await c.query("reset default_text_search_config");
  expect(await seen()).toBe("pg_catalog.simple");
  await c.query("discard all");
  expect(await seen()).toBe("pg_catalog.simple");
  expect(warnings).toEqual([
    'WARNING: invalid value for parameter "default_text_search_config": "public.layered_cfg"',
  ]);
  await c.end();
  await admin.end();
});
