/**
 * Statements that once took the shared engine down for every session (issue
 * 12): transaction isolation and read-only settings (the next settings
 * switch was refused and every session got FATAL), PREPARE TRANSACTION (a
 * syntax error that left an aborted transaction holding the engine), and a
 * statement prepared while the engine was held (pgbench -M prepared then
 * lost "P_0"). Each statement shape runs on session A; session B and a new
 * session C must go on working, under the default server (and --adapter
 * subprocess with PGTS_TEST_ADAPTERS=all; the held-engine pgbench runs under
 * both always). Real clients: node-postgres, postgres.js, psql, pgbench.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import postgres from "postgres";
import {
  pgClient,
  type PgtsServer,
  psql,
  runPg,
  sharedServer,
  sleep,
  startSqlServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers();

const pools: postgres.Sql[] = [];
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end({ timeout: 1 }).catch(() => {})));
});

type Outcome = { rows: unknown[] } | { code: string; message: string; hint?: string };

async function run(c: pg.Client, sql: string): Promise<Outcome> {
  try {
    const r = await c.query(sql);
    const last = Array.isArray(r) ? r[r.length - 1] : r;
    return { rows: last.rows };
  } catch (e) {
    const err = e as { code: string; message: string; hint?: string };
    return { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) };
  }
}

/** Every statement shape of the issue, with what session A must get (rows or an error). */
const SHAPES: Array<[string, Outcome | "ok"]> = [
  ["BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SELECT 1 AS x; COMMIT", "ok"],
  ["BEGIN; SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT 1 AS x; COMMIT", "ok"],
  ["BEGIN; SET TRANSACTION READ ONLY; SELECT 1 AS x; COMMIT", "ok"],
  ["BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE; COMMIT", "ok"],
  ["BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT 1 AS x; COMMIT", "ok"],
  ["BEGIN; SET transaction_isolation = 'serializable'; SELECT 1 AS x; COMMIT", "ok"],
  ["BEGIN; SET LOCAL transaction_read_only = on; SELECT 1 AS x; COMMIT", "ok"],
  ["SET transaction_isolation = 'repeatable read'", "ok"],
  ["SET default_transaction_isolation = 'serializable'", "ok"],
  ["SET default_transaction_read_only = on", "ok"],
  ["SET default_transaction_deferrable = on", "ok"],
  ["SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ", "ok"],
  ["RESET ALL", "ok"],
  ["BEGIN; PREPARE TRANSACTION 'tx1'", {
    code: "55000",
    message: "prepared transactions are disabled",
    hint: 'Set "max_prepared_transactions" to a nonzero value.',
  }],
  ["COMMIT PREPARED 'x'", {
    code: "42704",
    message: 'prepared transaction with identifier "x" does not exist',
  }],
  ["ROLLBACK PREPARED 'x'", {
    code: "42704",
    message: 'prepared transaction with identifier "x" does not exist',
  }],
];

function shapesOn(adapter: "subprocess" | undefined): void {
  const server = sharedServer(adapter === undefined ? {} : { adapter });

  test("every statement shape on A leaves A, B and a new session C working", async () => {
    const s = server();
    const a = await pgClient(s);
    const b = await pgClient(s);
    for (const [sql, want] of SHAPES) {
      const got = await run(a, sql);
      if (want === "ok") expect({ sql, got: "rows" in got }).toEqual({ sql, got: true });
      else expect({ sql, got }).toEqual({ sql, got: want });
      // A is idle again (not stuck in a transaction) and answers.
      expect({ sql, a: await run(a, "SELECT 'a' AS who") }).toEqual({
        sql,
        a: { rows: [{ who: "a" }] },
      });
      expect({ sql, b: await run(b, "SELECT 'b' AS who") }).toEqual({
        sql,
        b: { rows: [{ who: "b" }] },
      });
      const c = await pgClient(s);
      expect({ sql, c: await run(c, "SELECT 'c' AS who") }).toEqual({
        sql,
        c: { rows: [{ who: "c" }] },
      });
      await c.end();
    }
    // A's own session characteristics stay A's; B never saw them.
    await a.query("SET default_transaction_isolation = 'serializable'");
    await b.query("SELECT 1");
    expect((await a.query("SHOW transaction_isolation")).rows).toEqual([
      { transaction_isolation: "serializable" },
    ]);
    expect((await b.query("SHOW transaction_isolation")).rows).toEqual([
      { transaction_isolation: "read committed" },
    ]);
    expect(a.asyncErrors).toEqual([]);
    expect(b.asyncErrors).toEqual([]);
  });

  test("a superuser-only setting left behind a SET ROLE, and role defaults, switch cleanly", async () => {
    const s = server();
    const admin = await pgClient(s);
    await admin.query("CREATE ROLE walker LOGIN");
    await admin.query("ALTER ROLE walker SET work_mem = '7MB'");
    await admin.query("ALTER ROLE walker SET log_statement = 'all'");
    await admin.query("ALTER ROLE walker SET application_name = 'from-role'");
    // PostgreSQL applies ALTER ROLE ... SET at login; so does a new pgts session.
    const w = await pgClient(s, { user: "walker" });
    const ws = await w.query(
      "SELECT current_setting('work_mem') AS wm, current_setting('application_name') AS app",
    );
    expect(ws.rows).toEqual([{ wm: "7MB", app: "from-role" }]);
    // Database defaults too, and a role's setting in this database wins over
    // its setting everywhere (PostgreSQL's order).
    await admin.query("ALTER DATABASE postgres SET extra_float_digits = 2");
    await admin.query("ALTER ROLE walker IN DATABASE postgres SET work_mem = '9MB'");
    const w2 = await pgClient(s, { user: "walker" });
    expect(
      (await w2.query(
        "SELECT current_setting('work_mem') AS wm, current_setting('extra_float_digits') AS efd",
      )).rows,
    ).toEqual([{ wm: "9MB", efd: "2" }]);
    await w2.end();
    await admin.query("ALTER DATABASE postgres RESET extra_float_digits");
    await admin.query("ALTER ROLE walker IN DATABASE postgres RESET work_mem");
    // A superuser sets a superuser-only parameter, then becomes an ordinary role.
    await admin.query("SET log_min_duration_statement = '5s'");
    await admin.query("SET ROLE walker");
    const other = await pgClient(s);
    expect(
      (await other.query(
        "SELECT current_setting('log_min_duration_statement') AS v, current_user AS u",
      ))
        .rows,
    ).toEqual([{ v: "-1", u: "postgres" }]);
    expect((await w.query("SELECT current_setting('work_mem') AS wm")).rows).toEqual([
      { wm: "7MB" },
    ]);
    expect(
      (await admin.query(
        "SELECT current_setting('log_min_duration_statement') AS v, current_user AS u",
      )).rows,
    ).toEqual([{ v: "5s", u: "walker" }]);
    await admin.query("RESET ROLE");
    await admin.query("RESET log_min_duration_statement");
    for (const c of [admin, w, other]) expect(c.asyncErrors).toEqual([]);
    await w.end();
    await admin.query("DROP ROLE walker");
  });

  test("a superuser's setting made before SET SESSION AUTHORIZATION comes back with it", async () => {
    const s = server();
    const admin = await pgClient(s);
    const notices: string[] = [];
    admin.on("notice", (n) => notices.push(n.message));
    await admin.query("CREATE ROLE sa_user");
    await admin.query("SET log_min_duration_statement = '3s'");
    await admin.query("SET SESSION AUTHORIZATION sa_user");
    const other = await pgClient(s);
    expect(
      (await other.query("SELECT current_setting('log_min_duration_statement') AS v")).rows,
    ).toEqual([{ v: "-1" }]);
    expect(
      (await admin.query(
        "SELECT current_setting('log_min_duration_statement') AS v, current_user AS u",
      )).rows,
    ).toEqual([{ v: "3s", u: "sa_user" }]);
    expect(notices).toEqual([]);
    await admin.query("SET SESSION AUTHORIZATION postgres");
    await admin.query("RESET log_min_duration_statement");
    await admin.query("DROP ROLE sa_user");
    await other.end();
  });

  test("exit_on_error = on and vacuum_cost_delay are refused however they are set, so nothing ends the backend every session shares", async () => {
    const s = server();
    const a = await pgClient(s);
    const b = await pgClient(s);
    const refused = async (sql: string) => {
      const x = await a.query(sql).then(() => null, (err) => err);
      return x === null ? "ran" : `${x.code} ${x.message}`;
    };
    const message = '0A000 unsupported value for parameter "exit_on_error": "on"';
    expect(await refused("SET exit_on_error = on")).toBe(message);
    expect(await refused("SELECT set_config('exit_on_error', 'o' || 'n', false)")).toBe(message);
    expect(await refused("DO $$ BEGIN EXECUTE 'SET exit_on_error = true'; END $$")).toBe(message);
    expect(await refused("SET exit_on_error = off")).toBe("ran");
    expect(await refused("SELECT 1/0")).toBe("22012 division by zero");
    // The engine's logical decoding never returns (wal_level = logical is
    // refused): a slot is PostgreSQL's error, not a stopped engine.
    expect(await refused("ALTER SYSTEM SET wal_level = logical")).toBe(
      '0A000 unsupported value for parameter "wal_level": "logical"',
    );
    expect(await refused("SELECT pg_create_logical_replication_slot('s', 'pgoutput')")).toBe(
      '55000 logical decoding requires "wal_level" >= "logical"',
    );
    // A VACUUM napping for vacuum_cost_delay ended the backend (PGlite has no
    // postmaster pipe to check): only 0 is accepted, however it is set.
    const delay = (v: string) =>
      `0A000 unsupported value for parameter "vacuum_cost_delay": "${v}ms"`;
    expect(await refused("SET vacuum_cost_delay = 100")).toBe(delay("100"));
    expect(await refused("SELECT set_config('vacuum_cost_delay', '0.5', false)")).toBe(
      delay("0.5"),
    );
    expect(await refused("ALTER ROLE CURRENT_USER SET vacuum_cost_delay = 5")).toBe(delay("5"));
    expect(await refused("SET vacuum_cost_delay = 0")).toBe("ran");
    await a.query("CREATE TABLE vacuumed AS SELECT g FROM generate_series(1, 2000) g");
    await a.query("DELETE FROM vacuumed WHERE g % 2 = 0");
    await a.query("SET vacuum_cost_limit = 1");
    expect(await refused("VACUUM (ANALYZE) vacuumed")).toBe("ran");
    await a.query("DROP TABLE vacuumed");
    expect((await a.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    expect((await b.query("SELECT 2 AS two")).rows).toEqual([{ two: 2 }]);
  });

  test("a tablespace at a location, which PGlite would keep in memory, is refused; an in-place one works; so are subscriptions", async () => {
    const a = await pgClient(server());
    const refused = async (sql: string) => {
      const x = await a.query(sql).then(() => null, (err) => err);
      return x === null ? "ran" : `${x.code} ${x.message}`;
    };
    // /tmp is in PGlite's in-memory file system: the tablespace, and the
    // rows of its tables, were lost at the next start.
    const message = "0A000 tablespaces at a location are not supported by the embedded engine";
    expect(await refused("CREATE TABLESPACE ts_mem LOCATION '/tmp'")).toBe(message);
    expect(
      await refused(
        "DO $$ BEGIN EXECUTE 'CREATE TABLESPACE ts_mem LOCATION ' || quote_literal('/ho' || 'me'); END $$",
      ),
    ).toBe(message);
    expect(await refused("CREATE TABLESPACE ts_mem LOCATION 'relative'")).toBe(
      "42P17 tablespace location must be an absolute path",
    );
    await a.query("SET allow_in_place_tablespaces = on");
    expect(await refused("CREATE TABLESPACE ts_in_place LOCATION ''")).toBe("ran");
    await a.query("CREATE TABLE ts_in_place_t (x int) TABLESPACE ts_in_place");
    await a.query("INSERT INTO ts_in_place_t VALUES (1)");
    expect((await a.query("SELECT x FROM ts_in_place_t")).rows).toEqual([{ x: 1 }]);
    await a.query("DROP TABLE ts_in_place_t");
    await a.query("DROP TABLESPACE ts_in_place");
    // A failed load of libpqwalreceiver (CREATE SUBSCRIPTION's) left every
    // later extension load failing for every session: refused before it.
    const subscriptions =
      "0A000 logical replication subscriptions are not supported by the embedded engine";
    expect(
      await refused(
        "CREATE SUBSCRIPTION sub CONNECTION 'host=127.0.0.1 port=1' PUBLICATION p WITH (connect = false)",
      ),
    ).toBe(subscriptions);
    expect(await refused("LOAD '$libdir/libpqwalreceiver'")).toBe(subscriptions);
    expect(await refused("CREATE EXTENSION IF NOT EXISTS pg_trgm")).toBe("ran");
    expect((await a.query("SELECT similarity('pgts', 'pgts') AS s")).rows).toEqual([{ s: 1 }]);
    await a.end();
  });

  test("a setting that can no longer be restored concerns only its own session", async () => {
    const s = server();
    const a = await pgClient(s);
    const b = await pgClient(s);
    const notices: Array<{ severity?: string; message: string }> = [];
    a.on("notice", (n) => notices.push(n));
    await a.query("CREATE TEXT SEARCH CONFIGURATION walk_cfg (COPY = pg_catalog.simple)");
    await a.query("SET default_text_search_config = 'public.walk_cfg'");
    await b.query("DROP TEXT SEARCH CONFIGURATION walk_cfg");
    // A's value is invalid now: A is warned and goes on with the engine's value.
    const r = await a.query("SELECT current_setting('default_text_search_config') AS cfg");
    expect(r.rows).toEqual([{ cfg: "pg_catalog.english" }]);
    expect(notices.map((n) => [n.severity, n.message])).toEqual([[
      "WARNING",
      'parameter "default_text_search_config" of this session could not be restored',
    ]]);
    expect((await b.query("SELECT 'b' AS who")).rows).toEqual([{ who: "b" }]);
    const c = await pgClient(s);
    expect((await c.query("SELECT 'c' AS who")).rows).toEqual([{ who: "c" }]);
    expect((await a.query("SELECT 'a' AS who")).rows).toEqual([{ who: "a" }]);
    expect(notices.length).toBe(1);
    await c.end();
    // The server log says which statement of the switch failed, for whom.
    await s.waitForLog(
      /settings switch for process \d+ failed at: SELECT pg_catalog\.set_config\('default_text_search_config'/,
    );
  });

  test("a session whose role was dropped under it ends; the others go on", async () => {
    const s = server();
    const admin = await pgClient(s);
    await admin.query("CREATE ROLE gone_role");
    const a = await pgClient(s);
    await a.query("SET ROLE gone_role");
    await admin.query("DROP ROLE gone_role");
    // A cannot be run as its role any more, nor as anyone else: it ends.
    const err = await a.query("SELECT current_user AS u").catch((e) => e);
    expect(err.severity).toBe("FATAL");
    expect(err.code).toBe("22023");
    expect(err.message).toBe('role "gone_role" does not exist');
    expect((await admin.query("SELECT current_user AS u")).rows).toEqual([{ u: "postgres" }]);
    const c = await pgClient(s);
    expect((await c.query("SELECT current_user AS u")).rows).toEqual([{ u: "postgres" }]);
    await c.end();
  });

  test("psql: PREPARE TRANSACTION is refused as PostgreSQL refuses it, others go on", async () => {
    const s = server();
    const b = await pgClient(s);
    const r = await psql(s, ["-c", "BEGIN", "-c", "PREPARE TRANSACTION 'tx1'"]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("ERROR:  prepared transactions are disabled");
    expect(r.err).toContain('HINT:  Set "max_prepared_transactions" to a nonzero value.');
    // The transaction ended: the next command runs outside any block.
    const after = await psql(s, [
      "-v",
      "ON_ERROR_STOP=0",
      "-c",
      "BEGIN",
      "-c",
      "PREPARE TRANSACTION 'tx1'",
      "-c",
      "SELECT 'status ' || (now() = statement_timestamp())::text",
    ]);
    expect(after.out.trim().split("\n").at(-1)).toBe("status true");
    expect((await b.query("SELECT 2 AS v")).rows).toEqual([{ v: 2 }]);
  });

  test("node-postgres and postgres.js run isolation-level transactions between other sessions", async () => {
    const s = server();
    const setup = await pgClient(s);
    await setup.query("CREATE TABLE iso_acct (id int PRIMARY KEY, n int NOT NULL)");
    await setup.query("INSERT INTO iso_acct VALUES (1, 0)");
    const sql = postgres({
      host: s.host,
      port: s.port,
      user: "postgres",
      database: "postgres",
      max: 3,
      onnotice: () => {},
      connect_timeout: 10,
    });
    pools.push(sql);
    const clients = await Promise.all([pgClient(s), pgClient(s), pgClient(s)]);
    const levels = ["SERIALIZABLE", "REPEATABLE READ", "READ COMMITTED"];
    const work: Promise<unknown>[] = [];
    // Prisma/TypeORM/Sequelize: BEGIN, then SET TRANSACTION inside it; each
    // client runs its transactions one after another, the clients at once.
    for (const [k, c] of clients.entries()) {
      work.push((async () => {
        for (let i = 0; i < 4; i++) {
          const level = levels[(k + i) % 3]!;
          await c.query("BEGIN");
          await c.query(`SET TRANSACTION ISOLATION LEVEL ${level}`);
          const shown = await c.query("SHOW transaction_isolation");
          expect(shown.rows[0].transaction_isolation).toBe(level.toLowerCase());
          await c.query("UPDATE iso_acct SET n = n + 1 WHERE id = 1");
          await c.query("COMMIT");
        }
      })());
    }
    // postgres.js: BEGIN ISOLATION LEVEL ... in one statement.
    for (let i = 0; i < 12; i++) {
      const level = levels[i % 3]!.toLowerCase();
      work.push(sql.begin(`isolation level ${level}`, async (tx) => {
        const [row] = await tx`show transaction_isolation`;
        expect(row!.transaction_isolation).toBe(level);
        await tx`update iso_acct set n = n + 1 where id = 1`;
      }));
    }
    // A session that never asked for another level keeps its own.
    work.push((async () => {
      for (let i = 0; i < 12; i++) {
        const r = await setup.query("SELECT current_setting('transaction_isolation') AS t");
        expect(r.rows[0].t).toBe("read committed");
      }
    })());
    await Promise.all(work);
    expect((await setup.query("SELECT n FROM iso_acct")).rows).toEqual([{ n: 24 }]);
    const fresh = await pgClient(s);
    expect((await fresh.query("SHOW transaction_isolation")).rows).toEqual([
      { transaction_isolation: "read committed" },
    ]);
    for (const c of [setup, fresh, ...clients]) expect(c.asyncErrors).toEqual([]);
  });
}

// The engine's behaviour, the same under every adapter: the default server,
// and --adapter subprocess too with PGTS_TEST_ADAPTERS=all (CI's time).
for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(
    adapter === undefined ? "default server" : `--adapter ${adapter}`,
    () => shapesOn(adapter as "subprocess" | undefined),
  );
}

/**
 * pgbench -M prepared prepares each statement with PQprepare (Parse, Sync)
 * before its first use, and goes on as if it had worked. A session holds
 * the engine from before pgbench starts until 2 s: the prepare's wait
 * (bounded at PREPARE_WAIT_MS, 0.5 s, deferred.ts) times out, its Bind's
 * (pgts.engine_wait_timeout, 4 s here) does not. (On a busy machine
 * pgbench starts later and the prepare may not time out, which the test
 * allows.)
 */
async function pgbenchAcrossAHeldEngine(s: PgtsServer): Promise<void> {
  const holder = await pgClient(s);
  await holder.query("CREATE TABLE bench_t (n int)");
  const script = join(s.root, "prepared.sql");
  writeFileSync(script, "SELECT count(*) FROM bench_t;\nSELECT 1;\n");
  await holder.query("BEGIN");
  await holder.query("SELECT 1");
  const bench = runPg(s, "pgbench", ["-M", "prepared", "-c", "2", "-T", "3", "-n", "-f", script], {
    timeoutMs: 60_000,
  });
  await sleep(2_000);
  await holder.query("COMMIT");
  const r = await bench;
  expect(r.err).not.toContain("does not exist");
  expect(r.err).not.toContain("error");
  expect(r.code).toBe(0);
  expect(r.out).toContain("number of failed transactions: 0 (0.000%)");
  expect(Number(/actually processed: (\d+)/.exec(r.out)?.[1])).toBeGreaterThan(0);
}

for (const adapter of [undefined, "subprocess"] as const) {
  test(
    `pgbench -M prepared -c 2: a prepare that waited out the engine wait timeout still exists (${
      adapter ?? "default"
    })`,
    async () => {
      await pgbenchAcrossAHeldEngine(
        await startSqlServer({
          perTest: true,
          // engine_hold_timeout (2 s by default) would end the holder, idle
          // in its block while pgbench waits, in a race with the COMMIT:
          // what is tested is the prepare's wait, so the holder is let be.
          settings: { engine_wait_timeout: "4s", engine_hold_timeout: "30s" },
          ...(adapter !== undefined ? { adapter } : {}),
        }),
      );
    },
  );
}

/**
 * pgbench runs its clients on threads, and a client's first use of a
 * statement blocks its thread in PQprepare. With four clients on two
 * threads, one client's prepare waits for the engine while a client of the
 * same thread holds it in a transaction block, which that client cannot go
 * on with until the prepare returns: the prepare is answered after a short
 * wait (deferred.ts), or the holder would be ended by engine_hold_timeout.
 */
test("pgbench -M prepared TPC-B with four clients on two threads: no client is ended", async () => {
  const s = await startSqlServer({ perTest: true });
  const init = await runPg(s, "pgbench", ["-i", "-q"], { timeoutMs: 120_000 });
  expect(init.code).toBe(0);
  const r = await runPg(s, "pgbench", ["-M", "prepared", "-c", "4", "-j", "2", "-T", "4", "-n"], {
    timeoutMs: 60_000,
  });
  expect(r.err).not.toContain("error");
  expect(r.code).toBe(0);
  expect(r.out).toContain("number of failed transactions: 0 (0.000%)");
});

test("a statement prepared while the engine is held reports its own error at the next use", async () => {
  const s = await startSqlServer({
    perTest: true,
    // As above: the holder is not to be ended by engine_hold_timeout.
    settings: { engine_wait_timeout: "4s", engine_hold_timeout: "30s" },
  });
  const holder = await pgClient(s);
  await holder.query("BEGIN");
  await holder.query("SELECT 1");
  // A bad statement prepared (PQprepare) while the engine is held past the
  // wait timeout: its syntax error is the answer to its first use.
  writeFileSync(join(s.root, "bad.sql"), "SELEC 1;\n");
  const bench = runPg(s, "pgbench", [
    "-M",
    "prepared",
    "-c",
    "1",
    "-t",
    "1",
    "-n",
    "-f",
    join(s.root, "bad.sql"),
  ], { timeoutMs: 60_000 });
  await sleep(2_000); // past the prepare's wait, before its first use's (see above)
  await holder.query("COMMIT");
  const r = await bench;
  expect(r.err).toContain('aborted in command 0 query 0: ERROR:  syntax error at or near "SELEC"');
  expect(r.err).not.toContain("does not exist");
  expect((await holder.query("SELECT 3 AS v")).rows).toEqual([{ v: 3 }]);
});
