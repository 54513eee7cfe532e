/**
 * Random scenarios for scripts/differential.ts (`--random N [--seed S]`):
 * three sessions interleaving statements on the state PostgreSQL keeps per
 * backend (settings and custom settings, a function's set_config,
 * setseed/random, prepared statements, WITH HOLD cursors, temporary tables,
 * sequences' currval/lastval, advisory locks, LISTEN/NOTIFY, SET ROLE,
 * DISCARD), with names from small sets so that sessions collide, in
 * every other scenario the third session in a second database, and in
 * every third the second session an ordinary role's. What
 * would differ for reasons the engine README lists is left out: a
 * transaction block is one session's steps with no other session's between
 * them (another's statement would wait for it), advisory locks are only
 * tried, sequences have no CACHE, no CLOSE ALL, random() only after the
 * session's own setseed().
 */

import type { Scenario } from "./differential-scenarios.ts";

/** A small seeded generator (mulberry32): the same seed, the same scenarios. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SESSIONS = 3;

const SETUP = [
  "do $$ begin if not exists (select from pg_roles where rolname = 'u1') then create role u1 login;" +
  " end if; end $$",
  "grant create on schema public to u1",
  "create sequence sq0",
  "create sequence sq1",
  "grant usage, select on sequence sq0, sq1 to u1",
  "create function fset(n text, v text) returns text language plpgsql as " +
  "$$ begin perform set_config(n, v, false); return current_setting(n); end $$",
  "create function fsetstatic() returns void language plpgsql as $$ begin set app.k2 = 'static'; end $$",
  "create function fwm() returns text language sql set work_mem = '7MB' as $$ select current_setting('work_mem') $$",
];

/** One session's statements that stand alone (autocommit or inside a block alike). */
function statement(pick: <T>(xs: readonly T[]) => T, n: () => number, seeded: boolean): string {
  const i = n() % 2;
  const ops: Array<() => string> = [
    () => `set work_mem = '${1 + (n() % 4)}MB'`,
    () => "reset work_mem",
    () => "show work_mem",
    () => `set timezone = '${pick(["Asia/Tokyo", "UTC", "America/Lima"])}'`,
    () => "select '2020-01-01 00:00+00'::timestamptz::text",
    () => `set app.k${n() % 3} = 'v${n()}'`,
    () => `reset app.k${n() % 3}`,
    () => `select current_setting('app.k${n() % 3}', true)`,
    () => `select fset('app.k${n() % 3}', 'f${n()}')`,
    () => "select fsetstatic()",
    () => `select setseed(${pick(["0.1", "0.5", "-0.25"])})`,
    ...(seeded ? [() => "select random()"] : []),
    () => `prepare p${i} as select ${n()}`,
    () => `execute p${i}`,
    () => `deallocate p${i}`,
    () => "deallocate all",
    () => `declare c${i} cursor with hold for select g from generate_series(1, 4) g`,
    () => `fetch c${i}`,
    () => `close c${i}`,
    () => `create temp table t${i} (a int)`,
    () => `insert into t${i} values (${n()})`,
    () => `select a from t${i} order by a`,
    () => `drop table t${i}`,
    () => `select nextval('sq${i}')`,
    () => `select currval('sq${i}')`,
    () => "select lastval()",
    () => `select pg_try_advisory_lock(${i})`,
    () => `select pg_advisory_unlock(${i})`,
    () => `listen ch${i}`,
    () => `unlisten ch${i}`,
    () => `notify ch${i}, 'p${n()}'`,
    () => "set role u1",
    () => "reset role",
    () => "select current_user",
    () => "discard all",
    () => "discard temp",
    () => "discard sequences",
    () => "discard plans",
    () => "select name from pg_prepared_statements order by name",
    () => "select name, is_holdable from pg_cursors order by name",
    () => "select array(select pg_listening_channels() order by 1)::text",
    // The database's own (pg_locks shows every database's in PostgreSQL: README differences).
    () =>
      "select objid from pg_locks where locktype = 'advisory' and database =" +
      " (select oid from pg_database where datname = current_database()) order by 1",
    () => `set search_path = ${pick(["public, pg_temp", "pg_temp, public", "public"])}`,
    () => "reset search_path",
    () => "show search_path",
    () =>
      `set session characteristics as transaction isolation level ${
        pick(["serializable", "read committed", "repeatable read"])
      }`,
    () => "show default_transaction_isolation",
    () => "show transaction_isolation",
    () => "select fwm(), current_setting('work_mem')",
    () => `create temp sequence ts${i}`,
    () => `select nextval('ts${i}')`,
    () => `select nextval('sq${i}'), currval('sq${i}')`,
  ];
  return pick(ops)();
}

/** Statements only a transaction block takes (they end with it). */
function blockStatement(pick: <T>(xs: readonly T[]) => T, n: () => number): string {
  return pick([
    () => `set local work_mem = '${5 + (n() % 3)}MB'`,
    () => `set local app.k${n() % 3} = 'l${n()}'`,
    () => "declare cx cursor for select g from generate_series(1, 3) g",
    () => "fetch cx",
    () => "show work_mem",
  ])();
}

/** From `seed`: a number in [0, 1), an element of a list, a number in 0..99. */
export function draws(seed: number) {
  const rand = generator(seed);
  return {
    rand,
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!,
    n: () => Math.floor(rand() * 100),
  };
}

/** `count` scenarios of `steps` steps each, from `seed`. */
export function randomScenarios(count: number, seed: number, steps = 60): Scenario[] {
  const { rand, pick, n } = draws(seed);
  const out: Scenario[] = [];
  for (let k = 0; k < count; k++) {
    const seeded = new Array<boolean>(SESSIONS).fill(false);
    const list: Array<readonly [number, string]> = [];
    const add = (s: number, sql: string) => {
      // random() is compared only once the session seeded its series.
      if (sql.startsWith("select setseed")) seeded[s] = true;
      if (sql === "discard all") seeded[s] = false;
      list.push([s, sql]);
    };
    while (list.length < steps) {
      const s = Math.floor(rand() * SESSIONS);
      if (rand() < 0.15) {
        // A block: its steps with no other session's between them.
        add(s, "begin");
        for (let j = 1 + (n() % 3); j > 0; j--) {
          const sql = rand() < 0.3 ? blockStatement(pick, n) : statement(pick, n, seeded[s]!);
          // Not in a block: PostgreSQL refuses them there, or they end it.
          if (sql.startsWith("discard all")) continue;
          add(s, sql);
        }
        if (rand() < 0.3) {
          add(s, "savepoint sp");
          add(s, statement(pick, n, seeded[s]!));
          add(s, "rollback to savepoint sp");
        }
        add(s, pick(["commit", "rollback"]));
      } else add(s, statement(pick, n, seeded[s]!));
    }
    // Every other scenario has its third session in a second database:
    // what databases share (roles, pg_locks) and what they do not.
    out.push({
      name: `random_${seed}_${k}`,
      setup: SETUP,
      steps: list,
      ...(k % 2 === 1 ? { databases: ["a", "a", "b"], setupBoth: true } : {}),
      // And every third, its second session logs in as an ordinary role.
      ...(k % 3 === 2 ? { users: ["postgres", "u1", "postgres"] } : {}),
    });
  }
  return out;
}
