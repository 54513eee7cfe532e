/**
 * log_statement, log_min_duration_statement and log_duration write what
 * PostgreSQL's backend writes: `statement: …` for each Query that
 * log_statement takes (ddl, mod or all, by what its statements do),
 * `execute <name>: …` with a DETAIL of its parameters for the extended
 * protocol, and `duration: … ms` once a message completed without an
 * error, with its statement when it took log_min_duration_statement or
 * longer and was not logged already. The expected lines are PostgreSQL
 * 15's for the same client calls (a WITH whose main statement is a SELECT
 * is not `mod` even when a CTE inserts; the extended protocol's Parse and
 * Bind have duration lines of their own), except the DETAIL's "Parameters"
 * (PostgreSQL 16 and later, the engine's 18 among them, capitalise it).
 */

import { expect, test } from "bun:test";
import postgres from "postgres";
import { serverLogLines, startPgts, usePgtsServers, waitFor } from "../../helpers/pgts.ts";

usePgtsServers();

/** `line` with its duration replaced by D, so that lines compare. */
const timed = (line: string) =>
  line.replace(/^LOG: {2}duration: \d+\.\d{3} ms/, "LOG:  duration: D ms");

async function linesWhenThere(
  server: { log: string },
  pid: number,
  last: string,
): Promise<string[]> {
  await waitFor(
    `"${last}" in the log`,
    () => serverLogLines(server.log, pid).map(timed).includes(last) || undefined,
  );
  return serverLogLines(server.log, pid).map(timed);
}

test("log_statement = ddl, mod and all log each Query by what its statements do", async () => {
  const server = await startPgts();
  const c = await server.client();
  const pid = (await c.query("select pg_backend_pid() as pid")).rows[0].pid as number;
  const run = async (...sqls: string[]) => {
    for (const sql of sqls) await c.query(sql).catch(() => {});
  };
  await run(
    "set log_statement = 'ddl'",
    "create table t1(a int)",
    "insert into t1 values (1)",
    "select 42",
    "create temp table t2 as select 1 as a",
    "select 7 into t3",
    "comment on table t1 is 'c'",
    "set log_statement = 'mod'",
    "insert into t1 values (2); select 3",
    "select 4",
    "with x as (insert into t1 values (3) returning a) select * from x",
    "with y as (select 1 as a) delete from t1 where a in (select a from y)",
    "prepare p(int) as insert into t1 values ($1)",
    "execute p(9)",
    "copy t1 to stdout",
    "explain select * from t1",
    "explain analyze update t1 set a = a",
    "explain (analyze, costs off) delete from t1 where false",
    "truncate t1",
    "set log_statement = 'all'",
    "select 5",
    "select * from nosuch",
    "set log_statement = 'none'",
    "insert into t1 values (4)",
  );
  await c.end();
  expect(await linesWhenThere(server, pid, "STATEMENT:  select * from nosuch")).toEqual([
    "LOG:  statement: create table t1(a int)",
    "LOG:  statement: create temp table t2 as select 1 as a",
    "LOG:  statement: select 7 into t3",
    "LOG:  statement: comment on table t1 is 'c'",
    "LOG:  statement: insert into t1 values (2); select 3",
    "LOG:  statement: with y as (select 1 as a) delete from t1 where a in (select a from y)",
    "LOG:  statement: prepare p(int) as insert into t1 values ($1)",
    "LOG:  statement: execute p(9)",
    "DETAIL:  prepare: prepare p(int) as insert into t1 values ($1)",
    "LOG:  statement: explain analyze update t1 set a = a",
    "LOG:  statement: explain (analyze, costs off) delete from t1 where false",
    "LOG:  statement: truncate t1",
    "LOG:  statement: select 5",
    "LOG:  statement: select * from nosuch",
    'ERROR:  relation "nosuch" does not exist at character 15',
    "STATEMENT:  select * from nosuch",
    "LOG:  statement: set log_statement = 'none'",
  ]);
});

test("the extended protocol logs execute <name> with its parameters; the server's setting reaches every session at a reload", async () => {
  const server = await startPgts();
  const c = await server.client();
  const pid = (await c.query("select pg_backend_pid() as pid")).rows[0].pid as number;
  const admin = await server.client();
  const reload = async (value: string) => {
    await admin.query(`alter system set log_statement = '${value}'`);
    await admin.query("select pg_reload_conf()");
    await waitFor(
      "the reload",
      async () =>
        (await c.query("show log_statement")).rows[0].log_statement === value || undefined,
    );
  };
  await reload("all");
  await c.query("select $1::int + 1 as x, $2::text as t, $3::text as n", [41, "it's", null]);
  await c.query({ name: "ins", text: "create temp table tt(a int)" });
  await c.query({ name: "ins2", text: "insert into tt values ($1)", values: [7] });
  await c.query({ name: "ins2", text: "insert into tt values ($1)", values: [8] });
  // Turned down to mod, it leaves out what only reads.
  await reload("mod");
  await c.query("select $1::int as quiet", [1]);
  await c.query({ name: "ins2", text: "insert into tt values ($1)", values: [9] });
  await c.end();
  await admin.end();
  expect(
    (await linesWhenThere(server, pid, "DETAIL:  Parameters: $1 = '9'")).filter((l) =>
      !l.startsWith("LOG:  statement: show")
    ),
  ).toEqual([
    "LOG:  execute <unnamed>: select $1::int + 1 as x, $2::text as t, $3::text as n",
    "DETAIL:  Parameters: $1 = '41', $2 = 'it''s', $3 = NULL",
    "LOG:  execute ins: create temp table tt(a int)",
    "LOG:  execute ins2: insert into tt values ($1)",
    "DETAIL:  Parameters: $1 = '7'",
    "LOG:  execute ins2: insert into tt values ($1)",
    "DETAIL:  Parameters: $1 = '8'",
    "LOG:  execute ins2: insert into tt values ($1)",
    "DETAIL:  Parameters: $1 = '9'",
  ]);
});

test("log_min_duration_statement logs what took that long, with its statement; log_duration every completed one; an error none", async () => {
  const server = await startPgts({ settings: { log_min_duration_statement: "0" } });
  const c = await server.client();
  const pid = (await c.query("select pg_backend_pid() as pid")).rows[0].pid as number;
  await c.query("select $1::int as x", [5]);
  // A named statement: parsed once, bound and executed twice.
  await c.query({ name: "nm", text: "select $1::text as y", values: ["a"] });
  await c.query({ name: "nm", text: "select $1::text as y", values: ["b"] });
  await c.query("select 1/0").catch(() => {});
  await c.query("set log_min_duration_statement = 150");
  await c.query("select 1");
  const slow = performance.now();
  await c.query("select pg_sleep(0.2)");
  const took = performance.now() - slow;
  // Its Parse and Bind, answered with it, take none of an Execute's time.
  await c.query("select pg_sleep($1)", [0.2]);
  await c.query("set log_duration = on");
  await c.query("select 2");
  await c.query("set log_statement = 'all'");
  await c.query("select 3");
  // Turned on by the statement itself: timed by its new value, as PostgreSQL does.
  await c.query("set log_min_duration_statement = -1");
  await c.query("set log_statement = 'none'");
  await c.query("set log_duration = off");
  await c.query("set log_min_duration_statement = 0");
  // Off again (checked with the new value: no line), then turned on after
  // log_statement wrote the statement: the duration alone.
  await c.query("set log_min_duration_statement = -1");
  await c.query("set log_statement = 'all'");
  await c.query("set log_min_duration_statement = 0");
  await c.query("select 'end'");
  await c.end();
  const lines = await linesWhenThere(server, pid, "LOG:  statement: select 'end'");
  expect(lines).toEqual([
    "LOG:  duration: D ms  statement: select pg_backend_pid() as pid",
    "LOG:  duration: D ms  parse <unnamed>: select $1::int as x",
    "LOG:  duration: D ms  bind <unnamed>: select $1::int as x",
    "DETAIL:  Parameters: $1 = '5'",
    "LOG:  duration: D ms  execute <unnamed>: select $1::int as x",
    "DETAIL:  Parameters: $1 = '5'",
    "LOG:  duration: D ms  parse nm: select $1::text as y",
    "LOG:  duration: D ms  bind nm: select $1::text as y",
    "DETAIL:  Parameters: $1 = 'a'",
    "LOG:  duration: D ms  execute nm: select $1::text as y",
    "DETAIL:  Parameters: $1 = 'a'",
    "LOG:  duration: D ms  bind nm: select $1::text as y",
    "DETAIL:  Parameters: $1 = 'b'",
    "LOG:  duration: D ms  execute nm: select $1::text as y",
    "DETAIL:  Parameters: $1 = 'b'",
    "ERROR:  division by zero",
    "STATEMENT:  select 1/0",
    "LOG:  duration: D ms  statement: select pg_sleep(0.2)",
    "LOG:  duration: D ms  execute <unnamed>: select pg_sleep($1)",
    "DETAIL:  Parameters: $1 = '0.2'",
    "LOG:  duration: D ms",
    "LOG:  duration: D ms",
    "LOG:  duration: D ms",
    "LOG:  statement: select 3",
    "LOG:  duration: D ms",
    "LOG:  statement: set log_min_duration_statement = -1",
    "LOG:  duration: D ms",
    "LOG:  statement: set log_statement = 'none'",
    "LOG:  duration: D ms",
    "LOG:  duration: D ms  statement: set log_min_duration_statement = 0",
    "LOG:  statement: set log_min_duration_statement = 0",
    "LOG:  duration: D ms",
    "LOG:  statement: select 'end'",
    "LOG:  duration: D ms",
  ]);
  // The slow statement's duration is its own, within what the client waited.
  const sleptLine = serverLogLines(server.log, pid).find((l) =>
    l.endsWith("select pg_sleep(0.2)")
  )!;
  const ms = Number(/duration: (\d+\.\d{3}) ms/.exec(sleptLine)![1]);
  expect(ms).toBeGreaterThanOrEqual(200);
  expect(ms).toBeLessThanOrEqual(took);
});

test("a portal fetched from again is `execute fetch from`; log_parameter_max_length cuts each parameter", async () => {
  const server = await startPgts({
    settings: { log_statement: "all", log_parameter_max_length: 4 },
  });
  const sql = postgres({
    host: server.host,
    port: server.port,
    user: "postgres",
    database: "postgres",
    max: 1,
  });
  const [{ pid }] = await sql`select pg_backend_pid() as pid`;
  // postgres.js's cursor: Execute with a row limit, then again on the suspended portal.
  const batches: number[] = [];
  await sql`select generate_series(1, ${5}::int) as x`.cursor(2, (rows) => {
    batches.push(rows.length);
  });
  expect(batches).toEqual([2, 2, 1]);
  await sql`select ${"abcdefgh"}::text as t, ${"é€"}::text as u`;
  await sql.end();
  const lines =
    (await linesWhenThere(server, pid, "DETAIL:  Parameters: $1 = 'abcd...', $2 = 'é...'"))
      // postgres.js names its statements itself.
      .map((l) => l.replace(/execute( fetch from)? [^:/]+/, "execute$1 S"))
      .filter((l) => !l.includes("pg_backend_pid"));
  expect(lines).toEqual([
    "LOG:  execute S: select generate_series(1, $1::int) as x",
    "DETAIL:  Parameters: $1 = '5'",
    "LOG:  execute fetch from S: select generate_series(1, $1::int) as x",
    "DETAIL:  Parameters: $1 = '5'",
    "LOG:  execute fetch from S: select generate_series(1, $1::int) as x",
    "DETAIL:  Parameters: $1 = '5'",
    "LOG:  execute S: select $1::text as t, $2::text as u",
    "DETAIL:  Parameters: $1 = 'abcd...', $2 = 'é...'",
  ]);
});
