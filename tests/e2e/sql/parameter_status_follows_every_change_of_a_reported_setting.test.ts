/**
 * ParameterStatus after start-up, as PostgreSQL sends it: just before the
 * ReadyForQuery of the input that changed a GUC_REPORT parameter, only the
 * parameters whose value differs from what that client was last told,
 * however the change was spelled (SET, RESET, set_config, a function body,
 * SET ROLE, SET SESSION AUTHORIZATION, a ROLLBACK that undid a SET, DISCARD
 * ALL). Each session is told of its own changes only, and a change a
 * function made stays that session's (it once leaked to the next session
 * with the same start-up settings and was lost to its own). node-postgres's
 * `parameterStatus` events, and psql's ENCODING variable.
 */

import { expect, test } from "bun:test";
import type pg from "pg";
import { pgClient, psql, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";

useSqlServers();
const server = sharedServer();

interface Watched {
  readonly client: pg.Client;
  /** "name=value" for each ParameterStatus, "Z" for each ReadyForQuery, since the last take(). */
  take(): string[];
}

async function watched(): Promise<Watched> {
  const client = await pgClient(server());
  let seen: string[] = [];
  // deno-lint-ignore no-explicit-any -- node-postgres's connection is not in its typings
  const conn = (client as any).connection as {
    on(ev: string, f: (m: { parameterName: string; parameterValue: string }) => void): void;
  };
  conn.on("parameterStatus", (m) => seen.push(`${m.parameterName}=${m.parameterValue}`));
  conn.on("readyForQuery", () => seen.push("Z"));
  return {
    client,
    take() {
      const t = seen;
      seen = [];
      return t;
    },
  };
}

/** What the client saw while `sql` ran: its ParameterStatus messages, then "Z". */
async function told(w: Watched, sql: string): Promise<string[]> {
  w.take();
  await w.client.query(sql);
  return w.take();
}

test("SET, RESET and set_config send the new value just before ReadyForQuery", async () => {
  const w = await watched();
  expect(await told(w, "set application_name = 'viaset'")).toEqual([
    "application_name=viaset",
    "Z",
  ]);
  // The same value again: nothing differs from what the client was told.
  expect(await told(w, "set application_name = 'viaset'")).toEqual(["Z"]);
  expect(await told(w, "reset application_name")).toEqual(["application_name=", "Z"]);
  expect(await told(w, "select pg_catalog.set_config('application_name', 'x', false)"))
    .toEqual(["application_name=x", "Z"]);
  // Reading settings tells nothing.
  expect(await told(w, "show application_name")).toEqual(["Z"]);
  expect(await told(w, "select 1")).toEqual(["Z"]);
});

test("each reported parameter is sent when it changes", async () => {
  const w = await watched();
  // The cluster's own zone (pgts init took the machine's), which RESET ALL goes back to.
  const zone = (await w.client.query("show timezone")).rows[0].TimeZone as string;
  w.take();
  const cases: Array<[string, string[]]> = [
    ["set timezone = 'Europe/Paris'", ["TimeZone=Europe/Paris"]],
    ["set datestyle = 'german'", ["DateStyle=German, DMY"]],
    ["set intervalstyle = 'iso_8601'", ["IntervalStyle=iso_8601"]],
    ["set standard_conforming_strings = off", ["standard_conforming_strings=off"]],
    ["set default_transaction_read_only = on", ["default_transaction_read_only=on"]],
    ["set search_path = pg_catalog, public", ["search_path=pg_catalog, public"]],
    ["set client_encoding = 'SQL_ASCII'", ["client_encoding=SQL_ASCII"]],
    // A parameter that is not GUC_REPORT: nothing.
    ["set work_mem = '8MB'", []],
  ];
  for (const [sql, status] of cases) expect(await told(w, sql)).toEqual([...status, "Z"]);
  const all = await told(w, "reset all");
  expect(all.at(-1)).toBe("Z");
  expect(all.slice(0, -1).sort()).toEqual([
    "DateStyle=ISO, MDY",
    "IntervalStyle=postgres",
    `TimeZone=${zone}`,
    "client_encoding=UTF8",
    "default_transaction_read_only=off",
    'search_path="$user", public',
    "standard_conforming_strings=on",
  ]);
});

test("a function that calls set_config is reported, and a SET clause that puts the value back is not", async () => {
  const w = await watched();
  await w.client.query(
    "create function ps_set_app(v text) returns text language sql" +
      " as $$ select pg_catalog.set_config('application_name', v, false) $$",
  );
  await w.client.query(
    "create function ps_with_path() returns int language sql" +
      " set search_path = pg_catalog as $$ select 1 $$",
  );
  expect(await told(w, "select ps_set_app('by a function')")).toEqual([
    "application_name=by a function",
    "Z",
  ]);
  expect(await told(w, "select ps_with_path()")).toEqual(["Z"]);
  expect(
    await told(
      w,
      "do $$ begin perform pg_catalog.set_config('TimeZone', 'Asia/Tokyo', false); end $$",
    ),
  )
    .toEqual(["TimeZone=Asia/Tokyo", "Z"]);
});

test("a SET inside a block is sent at once, and the ROLLBACK that undoes it sends the value back", async () => {
  const w = await watched();
  await w.client.query("set application_name = 'before'");
  expect(await told(w, "begin")).toEqual(["Z"]);
  expect(await told(w, "set application_name = 'in the block'")).toEqual([
    "application_name=in the block",
    "Z",
  ]);
  expect(await told(w, "rollback")).toEqual(["application_name=before", "Z"]);
  // SET LOCAL lasts until the COMMIT.
  expect(await told(w, "begin; set local application_name = 'local'")).toEqual([
    "application_name=local",
    "Z",
  ]);
  expect(await told(w, "commit")).toEqual(["application_name=before", "Z"]);
  // An error after the SET in the same block: the abort puts the value
  // back at once (PostgreSQL's AbortTransaction), so nothing differs.
  await expect(
    w.client.query("begin; set application_name = 'failed'; select 1/0"),
  ).rejects.toThrow("division by zero");
  expect(w.take()).toEqual(["Z"]);
  expect(await told(w, "rollback")).toEqual(["Z"]);
  expect((await w.client.query("show application_name")).rows[0].application_name).toBe("before");
});

test("SET ROLE and SET SESSION AUTHORIZATION report is_superuser and session_authorization", async () => {
  const w = await watched();
  await w.client.query("create role ps_plain login");
  expect(await told(w, "set role ps_plain")).toEqual(["is_superuser=off", "Z"]);
  expect(await told(w, "reset role")).toEqual(["is_superuser=on", "Z"]);
  expect((await told(w, "set session authorization ps_plain")).sort()).toEqual([
    "Z",
    "is_superuser=off",
    "session_authorization=ps_plain",
  ]);
  expect((await told(w, "reset session authorization")).sort()).toEqual([
    "Z",
    "is_superuser=on",
    "session_authorization=postgres",
  ]);
});

test("DISCARD ALL reports what it put back", async () => {
  const w = await watched();
  await w.client.query("set application_name = 'to discard'; set intervalstyle = 'sql_standard'");
  const status = await told(w, "discard all");
  expect(status.at(-1)).toBe("Z");
  expect(status.slice(0, -1).sort()).toEqual(["IntervalStyle=postgres", "application_name="]);
});

test("a session is told only of its own changes, and a function's change stays its own", async () => {
  const a = await watched();
  const b = await watched();
  await b.client.query("set application_name = 'b app'");
  await a.client.query(
    "create function ps_set_by_a() returns text language sql" +
      " as $$ select pg_catalog.set_config('application_name', 'set by a', false) $$",
  );
  a.take();
  b.take();
  expect(await told(a, "select ps_set_by_a()")).toEqual(["application_name=set by a", "Z"]);
  const show = async (w: Watched) =>
    (await w.client.query("show application_name")).rows[0].application_name;
  // B's turn switches the engine to B's settings and back: neither is told anything.
  expect(await show(b)).toBe("b app");
  expect(await show(a)).toBe("set by a");
  expect(a.take()).toEqual(["Z"]);
  expect(b.take()).toEqual(["Z"]);
  // A new session started alike does not inherit A's value.
  const c = await watched();
  expect(await show(c)).toBe("");
});

test("a function's change does not reach a session waiting for the engine behind it", async () => {
  const a = await watched();
  const b = await watched();
  await a.client.query(
    "create function ps_flip(i int) returns text language sql" +
      " as $$ select pg_catalog.set_config('application_name', 'flip ' || i, false) $$",
  );
  await b.client.query("set application_name = 'steady'");
  const seenByB: string[] = [];
  await Promise.all([
    (async () => {
      for (let i = 0; i < 40; i++) await a.client.query("select ps_flip($1)", [i]);
    })(),
    (async () => {
      for (let i = 0; i < 40; i++) {
        seenByB.push((await b.client.query("show application_name")).rows[0].application_name);
      }
    })(),
  ]);
  expect(new Set(seenByB)).toEqual(new Set(["steady"]));
  expect((await a.client.query("show application_name")).rows[0].application_name).toBe(
    "flip 39",
  );
  expect(b.take().filter((m) => m !== "Z")).toEqual(["application_name=steady"]);
});

test("a change in an input whose answer was streamed is still reported, after its ReadyForQuery", async () => {
  const w = await watched();
  await w.client.query(
    "create function ps_set_tz(v text) returns text language sql" +
      " as $$ select pg_catalog.set_config('TimeZone', v, false) $$",
  );
  w.take();
  // Over 256 kB of rows: the Worker streams the answer.
  const r = await w.client.query(
    "select ps_set_tz('Asia/Tokyo') as tz, repeat('x', 100) as pad" +
      " from generate_series(1, 5000)",
  );
  expect(r.rows.length).toBe(5000);
  // Its ReadyForQuery went out before the change was known.
  await w.client.query("select 1");
  expect(w.take()).toContain("TimeZone=Asia/Tokyo");
  expect(await told(w, "select 1")).toEqual(["Z"]);
});

test("psql follows client_encoding changes (its ENCODING variable)", async () => {
  const r = await psql(server(), [
    "-c",
    "set client_encoding = 'SQL_ASCII'",
    "-c",
    "\\echo :ENCODING",
    "-c",
    "reset client_encoding",
    "-c",
    "\\echo :ENCODING",
  ]);
  expect(r.code).toBe(0);
  expect(r.out.trim().split("\n").filter((l) => l !== "SET" && l !== "RESET")).toEqual([
    "SQL_ASCII",
    "UTF8",
  ]);
});
