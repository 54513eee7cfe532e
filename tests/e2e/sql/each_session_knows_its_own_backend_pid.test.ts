/**
 * Backend identity is the session's own, as with a PostgreSQL backend per
 * connection: pg_backend_pid() is the pid of the session's BackendKeyData,
 * pg_stat_activity lists pgts's sessions with PostgreSQL's visibility
 * rules, and pg_cancel_backend / pg_terminate_backend act on them with
 * PostgreSQL's permission rules. node-postgres, under the default server and
 * --adapter inproc.
 */

import { describe, expect, test } from "bun:test";
import type pg from "pg";
import { pgClient, psql, sharedServer, sleep, useSqlServers } from "../../helpers/pgts-sql.ts";
import type { Adapter } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

const pidOf = (c: pg.Client) => (c as unknown as { processID: number }).processID;

/** A client's notices, collected. */
function notices(c: pg.Client): Array<{ severity?: string; message: string }> {
  const seen: Array<{ severity?: string; message: string }> = [];
  c.on("notice", (n) => seen.push(n as { severity?: string; message: string }));
  return seen;
}

for (const adapter of [undefined, "subprocess"] as Array<Adapter | undefined>) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("pg_backend_pid() is the pid in the session's BackendKeyData", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      const pa = (await a.query("select pg_backend_pid() as p")).rows[0].p;
      const pb = (await b.query("select pg_backend_pid() as p")).rows[0].p;
      expect(pa).toBe(pidOf(a));
      expect(pb).toBe(pidOf(b));
      expect(pa).not.toBe(pb);
      // Inside a transaction block and in a prepared statement too.
      await a.query("begin");
      expect((await a.query({ text: "select pg_backend_pid() as p", name: "bp" })).rows[0].p)
        .toBe(pa);
      await a.query("commit");
      // NOTIFY still carries the sender's pid, and the listener gets it.
      await b.query("listen identity_ch");
      const got = new Promise<{ processId: number }>((r) => b.once("notification", r));
      await a.query("notify identity_ch, 'x'");
      expect((await got).processId).toBe(pa);
      await a.end();
      await b.end();
    });

    test("pg_log_backend_memory_contexts takes a session's pid as its backend's", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      const seen = notices(a);
      const logs = async (pid: number | string) =>
        (await a.query(`select pg_log_backend_memory_contexts(${pid}) as ok`)).rows[0].ok;
      // PostgreSQL: true for its own pid and another backend's; PGlite's
      // builtin knew neither (WARNING "PID n is not a PostgreSQL server process").
      expect(await logs("pg_backend_pid()")).toBe(true);
      expect(await logs(pidOf(b))).toBe(true);
      expect(seen).toEqual([]);
      expect(await logs(2147483000)).toBe(false);
      expect(seen.map((n) => n.message)).toEqual([
        "PID 2147483000 is not a PostgreSQL server process",
      ]);
      await a.end();
      await b.end();
    });

    test("pg_locks shows the running session's locks under its own pid", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      await a.query("begin");
      await a.query("create table locks_pid_t (x int)");
      const mine = await a.query(
        "select relation::regclass::text as rel, mode, pid = pg_backend_pid() as me" +
          " from pg_locks where locktype = 'relation' and relation = 'locks_pid_t'::regclass",
      );
      expect(mine.rows).toEqual([{ rel: "locks_pid_t", mode: "AccessExclusiveLock", me: true }]);
      expect(
        (await a.query("select count(*)::int as n from pg_locks where pid <> pg_backend_pid()"))
          .rows,
      ).toEqual([{ n: 0 }]);
      await a.query("rollback");
      // Another session's own statement sees its own pid there.
      expect(
        (await b.query(
          "select bool_and(pid = $1) as all_mine from pg_locks where locktype = 'virtualxid'",
          [pidOf(b)],
        )).rows,
      ).toEqual([{ all_mine: true }]);
      await a.end();
      await b.end();
    });

    test("pg_stat_archiver has a stats_reset without an archiver or a reset, as PostgreSQL's has from initdb", async () => {
      const a = await pgClient(server());
      // psql's \gset of a NULL unsets the variable: stats.sql's comparison
      // after pg_stat_reset_shared('archiver') was a syntax error.
      expect(
        (await a.query(
          "select archived_count::int as n, stats_reset is not null as has_reset from pg_stat_archiver",
        )).rows,
      ).toEqual([{ n: 0, has_reset: true }]);
      await a.end();
    });

    test("pg_stat_activity lists every session; a non-superuser sees others' queries hidden", async () => {
      const s = server();
      const a = await pgClient(s);
      await a.query("set application_name = 'activity_a'");
      await a.query("create role activity_reader login");
      const b = await pgClient(s, { user: "activity_reader" });
      await b.query("set application_name = 'activity_b'");

      const rows = (await a.query(
        "select pid, usename, datname, application_name, client_addr is not null as has_addr," +
          " backend_start is not null as started, state, query, backend_type" +
          " from pg_stat_activity order by pid",
      )).rows;
      const mine = rows.find((r) => r.pid === pidOf(a));
      const theirs = rows.find((r) => r.pid === pidOf(b));
      expect(mine).toMatchObject({
        usename: "postgres",
        datname: "postgres",
        application_name: "activity_a",
        has_addr: true,
        started: true,
        state: "active",
        backend_type: "client backend",
      });
      expect(mine.query).toContain("from pg_stat_activity");
      expect(theirs).toMatchObject({
        usename: "activity_reader",
        application_name: "activity_b",
        state: "idle",
        query: "set application_name = 'activity_b'",
      });

      // The ordinary role sees its own row whole and the superuser's hidden.
      const seen = (await b.query(
        "select pid, usename, state, query from pg_stat_activity where pid = any($1)",
        [[pidOf(a), pidOf(b)]],
      )).rows;
      expect(seen.find((r) => r.pid === pidOf(a))).toEqual({
        pid: pidOf(a),
        usename: "postgres",
        state: null,
        query: "<insufficient privilege>",
      });
      expect(seen.find((r) => r.pid === pidOf(b))?.state).toBe("active");
      // pg_read_all_stats sees every row whole.
      await a.query("grant pg_read_all_stats to activity_reader");
      const all = (await b.query(
        "select state, query from pg_stat_activity where pid = $1",
        [pidOf(a)],
      )).rows[0];
      expect(all).toEqual({ state: "idle", query: "grant pg_read_all_stats to activity_reader" });
      await b.end();
      await a.query("drop role activity_reader");
      await a.end();
    });

    test("a session's own row has its transaction's and statement's start: xact_start = now()", async () => {
      const c = await pgClient(server());
      const own =
        "select xact_start = now() as xact, query_start = statement_timestamp() as query," +
        " state_change >= query_start as changed from pg_stat_activity where pid = pg_backend_pid()";
      expect((await c.query(own)).rows).toEqual([{ xact: true, query: true, changed: true }]);
      await c.query("begin");
      await c.query("select pg_sleep(0.02)");
      const inBlock = await c.query(
        "select xact_start = now() as xact, query_start = statement_timestamp() as query," +
          " xact_start < query_start as earlier from pg_stat_activity where pid = pg_backend_pid()",
      );
      expect(inBlock.rows).toEqual([{ xact: true, query: true, earlier: true }]);
      await c.query("commit");
      await c.end();
    });

    test("a session waiting for the engine shows as active, waiting on it, to the holder", async () => {
      const s = server();
      const a = await pgClient(s);
      const b = await pgClient(s);
      await a.query("begin");
      await a.query("select 1"); // the block holds the engine from its first statement
      const waiting = b.query("select 'waited' as w");
      await sleep(200);
      const row = (await a.query(
        "select state, wait_event_type, wait_event, query from pg_stat_activity where pid = $1",
        [pidOf(b)],
      )).rows[0];
      expect(row).toEqual({
        state: "active",
        wait_event_type: "Extension",
        wait_event: "PgtsEngine",
        query: "select 'waited' as w",
      });
      await a.query("commit");
      expect((await waiting).rows).toEqual([{ w: "waited" }]);
      await a.end();
      await b.end();
    });

    test("pg_cancel_backend cancels another session's wait; an unknown pid warns and is false", async () => {
      const s = server();
      const a = await pgClient(s);
      const b = await pgClient(s);
      const warned = notices(a);
      await a.query("begin");
      await a.query("select 1"); // the block holds the engine from its first statement
      const waiting = b.query("select count(*) from pg_class").then(() => null, (e) => e.code);
      await sleep(200);
      expect((await a.query("select pg_cancel_backend($1) as ok", [pidOf(b)])).rows)
        .toEqual([{ ok: true }]);
      expect(await waiting).toBe("57014");
      expect((await a.query("select pg_cancel_backend(999999) as ok")).rows).toEqual([{
        ok: false,
      }]);
      expect(warned).toContainEqual(
        expect.objectContaining({
          severity: "WARNING",
          message: "PID 999999 is not a PostgreSQL backend process",
        }),
      );
      await a.query("commit");
      // b goes on.
      expect((await b.query("select 2 as v")).rows).toEqual([{ v: 2 }]);
      // Cancelling oneself cancels the statement, as in PostgreSQL.
      const self = await a.query("select pg_cancel_backend(pg_backend_pid())").then(
        () => null,
        (e) => e.code,
      );
      expect(self).toBe("57014");
      expect((await a.query("select 3 as v")).rows).toEqual([{ v: 3 }]);
      await a.end();
      await b.end();
    });

    test("pg_terminate_backend ends another session with 57P01; roles need PostgreSQL's rights", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("create role signal_a login; create role signal_b login");
      await admin.query("create role signal_c login in role pg_signal_backend");
      const a = await pgClient(s, { user: "signal_a" });
      const b = await pgClient(s, { user: "signal_b" });
      const c = await pgClient(s, { user: "signal_c" });
      const a2 = await pgClient(s, { user: "signal_a" });

      // Another role's session, and a superuser's: refused with PostgreSQL's errors.
      const refused = await a.query("select pg_terminate_backend($1)", [pidOf(b)]).catch((e) => e);
      expect(refused).toMatchObject({
        code: "42501",
        message: "permission denied to terminate process",
      });
      expect(refused.detail).toContain('"pg_signal_backend"');
      const su = await c.query("select pg_cancel_backend($1)", [pidOf(admin)]).catch((e) => e);
      expect(su).toMatchObject({ code: "42501", message: "permission denied to cancel query" });
      expect(su.detail).toContain("SUPERUSER");

      // The same role may; a pg_signal_backend member may.
      const ended = new Promise<Error & { code?: string }>((r) => a2.once("error", r));
      expect((await a.query("select pg_terminate_backend($1) as ok", [pidOf(a2)])).rows)
        .toEqual([{ ok: true }]);
      expect((await ended).code).toBe("57P01");
      expect((await c.query("select pg_terminate_backend($1) as ok", [pidOf(b)])).rows)
        .toEqual([{ ok: true }]);
      await sleep(100);
      expect(await b.query("select 1").then(() => "ran", () => "ended")).toBe("ended");
      // Gone from pg_stat_activity.
      const left = (await admin.query(
        "select count(*)::int as n from pg_stat_activity where pid = any($1)",
        [[pidOf(a2), pidOf(b)]],
      )).rows[0].n;
      expect(left).toBe(0);
      const negative = await admin.query("select pg_terminate_backend($1, -1)", [pidOf(a)])
        .catch((e) => e);
      expect(negative).toMatchObject({ code: "22003", message: '"timeout" must not be negative' });

      await a.end();
      await c.end();
      await admin.query("drop role signal_a; drop role signal_b; drop role signal_c");
      await admin.end();
    });

    test("pg_stat_activity, pg_cancel_backend and pg_terminate_backend reach a session of another database", async () => {
      // PostgreSQL's backends of all databases are in one procarray; node-postgres's
      // gh-issues/130 test ends a pooled client with psql on template1.
      const s = server();
      const admin = await pgClient(s);
      const other = await pgClient(s, { database: "template1" });
      const sleeping = other.query("select pg_sleep(30)").then(() => null, (e) => e.code);
      await sleep(300);
      // pg_stat_activity lists it with its database, and the usual idiom reaches it.
      expect(
        (await admin.query("select datname, state, query from pg_stat_activity where pid = $1", [
          pidOf(other),
        ])).rows,
      ).toEqual([{ datname: "template1", state: "active", query: "select pg_sleep(30)" }]);
      expect(
        (await admin.query(
          "select pg_cancel_backend(pid) as ok from pg_stat_activity where datname = 'template1'",
        )).rows,
      ).toEqual([{ ok: true }]);
      expect(await sleeping).toBe("57014");
      const seen = await psql(s, [
        "-d",
        "template1",
        "-c",
        `select datname from pg_stat_activity where pid = ${pidOf(admin)}`,
      ]);
      expect(seen.out.trim()).toBe("postgres");
      const ended = new Promise<Error & { code?: string }>((r) => other.once("error", r));
      const r = await psql(s, [
        "-d",
        "template1",
        "-c",
        `select pg_terminate_backend(${pidOf(admin)}) as t`,
      ]);
      expect(r.code).toBe(0);
      expect(r.out.trim()).toBe("t");
      const adminEnded = await admin.query("select 1").then(() => "ran", (e) => e.code ?? "ended");
      expect(adminEnded).not.toBe("ran");
      expect((await other.query("select 2 as v")).rows).toEqual([{ v: 2 }]);
      other.removeAllListeners("error");
      expect(await Promise.race([ended.then(() => "ended"), sleep(100).then(() => "alive")]))
        .toBe("alive");
      await other.end();
    });

    test("a session that terminates itself gets the FATAL instead of a result; its transaction is rolled back", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("create table self_term (i int)");
      // psql, in a transaction block: the statement answers FATAL 57P01 and
      // the connection is closed, as PostgreSQL's backend does.
      const r = await psql(s, [
        "-c",
        "begin",
        "-c",
        "insert into self_term values (1)",
        "-c",
        "select pg_terminate_backend(pg_backend_pid()) as t",
        "-c",
        "select 'after' as never",
      ]);
      expect(r.code).not.toBe(0);
      expect(r.err).toContain("FATAL:  terminating connection due to administrator command");
      expect(r.out).not.toContain("after");
      expect(r.out).not.toMatch(/^t$/m);
      // node-postgres: the query itself fails with 57P01, and the client is gone.
      const c = await pgClient(s);
      const ended = new Promise<Error & { code?: string }>((res) => c.once("error", res));
      const failed = await c.query("select pg_terminate_backend(pg_backend_pid())").catch((e) => e);
      expect(failed).toMatchObject({ code: "57P01" });
      await ended.catch(() => {});
      // Nothing committed; the others keep working.
      expect((await admin.query("select count(*)::int as n from self_term")).rows[0].n).toBe(0);
      await admin.query("drop table self_term");
      await admin.end();
    });
  });
}
