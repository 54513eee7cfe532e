/**
 * The engine's pipeline (scheduler.ts, executor.ts): while session A's
 * statement runs, the next session's statement may already wait in the
 * engine's Worker, to run the moment A's ends idle. Here A's statement
 * looks plain to pgts (so it hands the engine on) but does not end idle,
 * and B's statement, waiting behind it, must not run then: not inside A's
 * transaction, not with A's temporary objects. B runs later, as if there
 * were no pipeline. A session whose settings are not the engine's is never
 * taken early (its settings go back first). A cancel of B while it waits
 * behind A ends B, not A, at once: B's statement never runs; so do B's
 * statement_timeout, lock_timeout and pgts.engine_wait_timeout, counted
 * from when B's statement began to wait.
 *
 * Each case has A sleep inside its statement while B's is sent, so that
 * B's waits behind it.
 */

import { expect, test } from "bun:test";
import {
  pgClient,
  sendCancelRequest,
  sharedServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";

useSqlServers();
const server = sharedServer();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

test("a statement that opens a block without a visible BEGIN keeps the next session's statement out of its transaction", async () => {
  const a = await pgClient(server());
  const b = await pgClient(server());
  await a.query("create table pipe_block (who text)");
  // The comment hides the BEGIN from pgts's look at the text: A hands the
  // engine on, and its answer ends in a transaction block.
  const opened = a.query("/* opens a block */ begin; select pg_sleep(0.4)");
  await sleep(100);
  const inserted = b.query("insert into pipe_block values ('b')");
  await opened;
  await a.query("insert into pipe_block values ('a')");
  await a.query("rollback");
  await inserted;
  const rows = await a.query("select who from pipe_block order by who");
  expect(rows.rows.map((r) => r.who)).toEqual(["b"]);
  await Promise.all([a.end(), b.end()]);
});

test("a session with settings of its own is not run early, behind a statement that changes the engine's", async () => {
  const a = await pgClient(server());
  const b = await pgClient(server());
  await b.query("set application_name = 'b app'");
  await a.query(
    "create function pipe_set() returns text language sql as " +
      "$$ select pg_sleep(0.4); select set_config('application_name', 'set by a', false) $$",
  );
  const set = a.query("select pipe_set()");
  await sleep(100);
  const shown = b.query("show application_name");
  await set;
  expect((await shown).rows[0].application_name).toBe("b app");
  await Promise.all([a.end(), b.end()]);
});

test("a function that makes a temporary table keeps it from the next session's statement", async () => {
  const a = await pgClient(server());
  const b = await pgClient(server());
  await a.query(
    "create function pipe_temp() returns void language plpgsql as " +
      "$$ begin perform pg_sleep(0.4); create temp table pipe_tt (x int); end $$",
  );
  const made = a.query("select pipe_temp()");
  await sleep(100);
  const seen = b.query(
    "select count(*)::int as n from pg_class where relname = 'pipe_tt'" +
      " and relnamespace = pg_my_temp_schema()",
  );
  await made;
  expect((await seen).rows[0].n).toBe(0);
  const err = await b.query("select * from pipe_tt").then(() => null, (e) => e);
  expect(err?.code).toBe("42P01");
  expect((await a.query("select count(*)::int as n from pipe_tt")).rows[0].n).toBe(0);
  await Promise.all([a.end(), b.end()]);
});

test("a cancel of a statement waiting behind another's ends that one only", async () => {
  const a = await pgClient(server());
  const b = await pgClient(server());
  const first = a.query("select pg_sleep(0.6) as slept");
  await sleep(100);
  const started = performance.now();
  const second = b.query("select pg_sleep(30)").then(() => null, (e) => e);
  await sleep(150);
  const { processID, secretKey } = b as unknown as { processID: number; secretKey: number };
  await sendCancelRequest(server(), processID, secretKey);
  expect((await second)?.code).toBe("57014");
  expect(performance.now() - started).toBeLessThan(10_000);
  expect((await first).rows[0].slept).toBe("");
  // Both sessions go on.
  expect((await b.query("select 2 as n")).rows[0].n).toBe(2);
  expect((await a.query("select 1 as n")).rows[0].n).toBe(1);
  await Promise.all([a.end(), b.end()]);
});

test("a cancel of a statement waiting behind another's long one answers before that one ends, the statement never runs, and the next in line runs after", async () => {
  const a = await pgClient(server());
  const b = await pgClient(server());
  const c = await pgClient(server());
  await a.query("create table pipe_cancel (who text)");
  // Sessions that have run a statement are taken early (their settings are
  // the engine's): C's exec then waits in the executor behind B's withdrawn one.
  await b.query("select 1");
  await c.query("select 1");
  let aEnded = 0;
  const first = a.query("select pg_sleep(2) as slept").then((r) => {
    aEnded = performance.now();
    return r;
  });
  await sleep(100);
  // B's short statement waits behind A's in the engine's Worker; C's waits
  // for the engine, to be taken early once B's turn is over.
  let bEnded = 0;
  const second = b.query("insert into pipe_cancel values ('b')").then(
    () => null,
    (e) => {
      bEnded = performance.now();
      return e;
    },
  );
  await sleep(100);
  const third = c.query("insert into pipe_cancel values ('c') returning who");
  await sleep(100);
  const { processID, secretKey } = b as unknown as { processID: number; secretKey: number };
  await sendCancelRequest(server(), processID, secretKey);
  // Answered while A's statement still runs (before, the cancel waited
  // for B's statement to run, which an INSERT outran: it was inserted).
  expect((await second)?.code).toBe("57014");
  expect((await first).rows[0].slept).toBe("");
  expect(bEnded).toBeLessThan(aEnded);
  expect((await third).rows[0].who).toBe("c");
  const rows = await a.query("select who from pipe_cancel order by who");
  expect(rows.rows.map((r) => r.who)).toEqual(["c"]);
  // Every session goes on.
  expect((await b.query("select 2 as n")).rows[0].n).toBe(2);
  expect((await c.query("select 3 as n")).rows[0].n).toBe(3);
  await Promise.all([a.end(), b.end(), c.end()]);
});

test("statement_timeout ends a statement's wait behind another session's, which runs on to its end", async () => {
  // The same settings, so that B is taken early; A's Query of three
  // statements runs 0.9 s, each within the 500 ms that B waits at most.
  const a = await pgClient(server(), { options: "-c statement_timeout=500" });
  const b = await pgClient(server(), { options: "-c statement_timeout=500" });
  await a.query("select 1");
  await b.query("select 1");
  let aEnded = 0;
  const first = a.query("select pg_sleep(0.3); select pg_sleep(0.3); select pg_sleep(0.3)").then(
    (r) => {
      aEnded = performance.now();
      return r;
    },
  );
  await sleep(100);
  let bEnded = 0;
  const err = await b.query("select 2").then(
    () => null,
    (e) => {
      bEnded = performance.now();
      return e;
    },
  );
  expect({ code: err?.code, message: err?.message }).toEqual({
    code: "57014",
    message: "canceling statement due to statement timeout",
  });
  await first;
  expect(bEnded).toBeLessThan(aEnded);
  expect((await b.query("select 3 as n")).rows[0].n).toBe(3);
  await Promise.all([a.end(), b.end()]);
});

test("pgts.engine_wait_timeout and lock_timeout end a statement's wait behind another session's with 55P03; it never runs", async () => {
  const cases = [
    {
      setting: "pgts.engine_wait_timeout=500",
      message:
        /^canceling statement due to engine wait timeout: the engine is held by process \d+$/,
    },
    { setting: "lock_timeout=500", message: /^canceling statement due to lock timeout$/ },
  ];
  for (const { setting, message } of cases) {
    // The same settings, so that B is taken early, behind A's 2 s statement.
    const a = await pgClient(server(), { options: `-c ${setting}` });
    const b = await pgClient(server(), { options: `-c ${setting}` });
    await a.query("create table if not exists pipe_bound (who text)");
    await b.query("select 1");
    const aPid = (await a.query("select pg_backend_pid() as pid")).rows[0].pid;
    let aEnded = 0;
    const long = a.query("select pg_sleep(2)").then(() => (aEnded = performance.now()));
    await sleep(100);
    const sent = performance.now();
    let bEnded = 0;
    const err = await b.query("insert into pipe_bound values ('b')").then(
      () => null,
      (e) => {
        bEnded = performance.now();
        return e;
      },
    );
    expect({ code: err?.code, message: err?.message }).toMatchObject({ code: "55P03" });
    expect(err.message).toMatch(message);
    expect(err.detail).toContain(`Process ${aPid} (`);
    // At its bound, long before A's statement ends.
    expect(bEnded - sent).toBeGreaterThanOrEqual(450);
    await long;
    expect(bEnded).toBeLessThan(aEnded);
    expect((await a.query("select count(*)::int as n from pipe_bound")).rows[0].n).toBe(0);
    expect((await b.query("select 3 as n")).rows[0].n).toBe(3);
    await Promise.all([a.end(), b.end()]);
  }
});

test("a wait behind another session's statement counts what the statement waited in line before", async () => {
  // A runs 1.5 s; B, taken early, waits behind it and then runs 4.5 s; C
  // waits in line while B waits, and is taken early behind B's statement
  // once it runs. C's bound, 2 s, counts from C's start: it ends at ~2 s,
  // not ~1.4 s in line + 2 s behind B (the margins, ~0.7 s each way, are
  // for a loaded machine).
  const options = { options: "-c pgts.engine_wait_timeout=2000" };
  const [a, b, c] = await Promise.all([1, 2, 3].map(() => pgClient(server(), options)));
  await Promise.all([a, b, c].map((s) => s.query("select 1")));
  const first = a.query("select pg_sleep(1.5)");
  await sleep(50);
  const second = b.query("select pg_sleep(4.5)");
  await sleep(50);
  const sent = performance.now();
  const err = await c.query("select count(*) from pg_class").then(() => null, (e) => e);
  const waited = performance.now() - sent;
  expect(err?.code).toBe("55P03");
  expect(waited).toBeGreaterThanOrEqual(1900);
  expect(waited).toBeLessThan(2700);
  await Promise.all([first, second]);
  await Promise.all([a.end(), b.end(), c.end()]);
});
