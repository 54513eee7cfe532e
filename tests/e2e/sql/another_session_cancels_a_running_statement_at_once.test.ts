/**
 * `pg_cancel_backend(pid)` and `pg_terminate_backend(pid)` from another
 * connection act on a statement that is running, as in PostgreSQL, though
 * that statement holds the one engine: the caller is answered at once (not
 * after the engine wait, with 55P03) and the target gets 57014, or FATAL
 * 57P01. With literals, with parameters (node-postgres's extended
 * protocol), through pg_stat_activity as node-postgres's own suite does,
 * with PostgreSQL's permission rules for ordinary roles, the WARNING and
 * false for an unknown pid, a terminate that waits for the end, and
 * `SHOW server_version_num` (which clients send first) answered meanwhile.
 * Afterwards the target (when cancelled), the caller and a new session all
 * work; so does a connection cancelled in an Execute that came after a
 * Flush, whose answer up to the Flush came first. node-postgres, the
 * default (in-process) server and --adapter subprocess.
 */

import { describe, expect, test } from "bun:test";
import type pg from "pg";
import postgres from "postgres";
import {
  concat,
  cstr,
  errorFields,
  int32,
  message,
  pgClient,
  RawConnection,
  sharedServer,
  sleep,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";
import type { Adapter } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

type Pg = Awaited<ReturnType<typeof pgClient>>;
const pidOf = (c: pg.Client) => (c as unknown as { processID: number }).processID;

/** A PL/pgSQL loop that only computes, and a sleep: the two ways a statement runs long. */
const LOOP = "do $$ declare i bigint := 0; begin loop i := i + 1; end loop; end $$";
const SLEEP = "select pg_sleep(30)";

let serial = 0;

/**
 * Starts `sql` on `c`, tagged with a comment of its own so that
 * `untilActive` knows this statement from the one before it; the promise
 * gives its error code (or "done"), and when it came.
 */
function running(c: Pg, sql: string): Promise<{ code: string; at: number }> & { text: string } {
  const text = `${sql} -- ${++serial}`;
  const p = c.query(text).then(
    () => ({ code: "done", at: Date.now() }),
    (e: { code?: string }) => ({ code: e.code ?? String(e), at: Date.now() }),
  );
  return Object.assign(p, { text });
}

/**
 * Waits until pg_stat_activity (read by `by`) shows `pid` running `text`
 * and not waiting for the engine: it holds the engine, and its statement
 * may not have begun inside it yet. Polled without a pause, so that the
 * signal that follows comes within milliseconds of the statement's start.
 */
async function untilActive(by: Pg, pid: number, text: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    const r = await by.query(
      "select state, query, wait_event from pg_stat_activity where pid = $1",
      [pid],
    );
    const row = r.rows[0];
    if (row?.state === "active" && row.query === text && row.wait_event === null) return;
  }
  throw new Error(`session ${pid} never ran ${text}`);
}

/** `p`'s outcome, or "still running" once `ms` have passed. */
function within<T>(p: Promise<T>, ms: number): Promise<T | "still running"> {
  return Promise.race([p, sleep(ms).then(() => "still running" as const)]);
}

for (const adapter of [undefined, "subprocess"] as Array<Adapter | undefined>) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("a cancel or terminate sent the moment the statement holds the engine ends it at once, every time", async () => {
      // The statement may not have begun inside the engine yet: PostgreSQL
      // drops a cancel that comes before a statement, but here the
      // session's statement has the engine and must stop. A cancel that
      // set the flags before pg_sleep took its deadline used to be acted
      // on only when the 30 s were over, holding the engine.
      const b = await pgClient(server());
      const c = await pgClient(server());
      for (const kind of ["cancel", "terminate"] as const) {
        for (let i = 0; i < 15; i++) {
          const a = await pgClient(server());
          a.on("error", () => {});
          const victim = running(a, SLEEP);
          await untilActive(b, pidOf(a), victim.text);
          expect((await b.query(`select pg_${kind}_backend(${pidOf(a)}) as ok`)).rows)
            .toEqual([{ ok: true }]);
          expect(await within(victim.then((v) => v.code), 4000))
            .toBe(kind === "cancel" ? "57014" : "57P01");
          // The engine is free again: another session runs at once.
          expect(await within(c.query(`select ${i} as v`).then((r) => r.rows), 4000))
            .toEqual([{ v: i }]);
          await a.end().catch(() => {});
        }
      }
      await b.end();
      await c.end();
    });

    test("pg_cancel_backend(N) answers true at once and the sleeping statement gets 57014", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      const version = (await b.query("show server_version_num")).rows[0].server_version_num;
      for (const sql of [SLEEP, LOOP]) {
        const victim = running(a, sql);
        await untilActive(b, pidOf(a), victim.text);
        // Clients read the server version first (node-postgres's suite does).
        expect((await b.query("show server_version_num")).rows).toEqual([
          { server_version_num: version },
        ]);
        const asked = Date.now();
        const r = await b.query(`select pg_cancel_backend(${pidOf(a)})`);
        expect(r.rows).toEqual([{ pg_cancel_backend: true }]);
        expect(r.fields.map((f) => [f.name, f.dataTypeID])).toEqual([["pg_cancel_backend", 16]]);
        const { code, at } = await victim;
        expect(code).toBe("57014");
        // Not after the engine wait (5 s), as when the call queued behind the sleeper.
        expect(at - asked).toBeLessThan(4000);
      }
      // All three go on.
      expect((await a.query("select 1 as v")).rows).toEqual([{ v: 1 }]);
      expect((await b.query("select 2 as v")).rows).toEqual([{ v: 2 }]);
      const c = await pgClient(server());
      expect((await c.query("select 3 as v")).rows).toEqual([{ v: 3 }]);
      for (const x of [a, b, c]) await x.end();
    });

    test("with parameters and through pg_stat_activity, as node-postgres's suite asks", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      let victim = running(a, SLEEP);
      await untilActive(b, pidOf(a), victim.text);
      // node-postgres's query-error-handling test, word for word.
      const found = await b.query(
        "SELECT pid, (SELECT pg_cancel_backend(pid)) AS killed FROM pg_stat_activity WHERE query LIKE $1",
        [`${SLEEP} -- %`],
      );
      expect(found.rows).toEqual([{ pid: pidOf(a), killed: true }]);
      expect(found.fields.map((f) => [f.name, f.dataTypeID])).toEqual([["pid", 23], [
        "killed",
        16,
      ]]);
      expect((await victim).code).toBe("57014");

      victim = running(a, LOOP);
      await untilActive(b, pidOf(a), victim.text);
      expect((await b.query("select pg_catalog.pg_cancel_backend($1::int) as ok", [pidOf(a)])).rows)
        .toEqual([{ ok: true }]);
      expect((await victim).code).toBe("57014");

      // A prepared statement, ended through the view with pg_terminate_backend
      // (query-error-handling-prepared-statement).
      a.on("error", () => {});
      const napping = a.query({ name: "nap", text: "select pg_sleep($1)", values: [30] }).then(
        () => "done",
        (e: { code?: string }) => e.code,
      );
      await untilActive(b, pidOf(a), "select pg_sleep($1)");
      const t = await b.query(
        "SELECT pid, (SELECT pg_terminate_backend(pid)) AS killed FROM pg_stat_activity WHERE query = $1",
        ["select pg_sleep($1)"],
      );
      expect(t.rows).toEqual([{ pid: pidOf(a), killed: true }]);
      expect(await napping).toBe("57P01");
      expect(await a.query("select 1").then(() => "ran", () => "closed")).toBe("closed");
      expect((await b.query("select count(*)::int as n from pg_stat_activity")).rows[0].n)
        .toBeGreaterThanOrEqual(1);
      await b.end();
    });

    test("pg_terminate_backend ends the running session with 57P01; with a timeout it waits for the end", async () => {
      const b = await pgClient(server());
      for (const sql of [SLEEP, LOOP]) {
        for (const timeout of [null, 5000]) {
          const a = await pgClient(server());
          const victim = running(a, sql);
          await untilActive(b, pidOf(a), victim.text);
          const call = timeout === null
            ? `select pg_terminate_backend(${pidOf(a)}) as ok`
            : `select pg_terminate_backend(${pidOf(a)}, ${timeout}) as ok`;
          const order: string[] = [];
          a.once("end", () => order.push("target's connection ended"));
          expect((await b.query(call)).rows).toEqual([{ ok: true }]);
          order.push("caller answered");
          expect((await victim).code).toBe("57P01");
          await sleep(50);
          // As in PostgreSQL, whose backend ends after pg_terminate_backend()
          // returned: a client that gives back the connection it killed once
          // the call answers (Kysely) must not see it end before.
          // (With a timeout the call waits for the end: either order.)
          if (timeout === null) {
            expect(order).toEqual(["caller answered", "target's connection ended"]);
          }
          expect(await a.query("select 1").then(() => "ran", () => "closed")).toBe("closed");
          if (timeout !== null) {
            // It waited: the session is gone from the view already.
            const left = await b.query(
              "select count(*)::int as n from pg_stat_activity where pid = $1",
              [
                pidOf(a),
              ],
            );
            expect(left.rows[0].n).toBe(0);
          }
        }
      }
      const c = await pgClient(server());
      expect((await c.query("select 1 as v")).rows).toEqual([{ v: 1 }]);
      await b.end();
      await c.end();
    });

    test("while the engine is held: an unknown pid gives the WARNING and false; roles need PostgreSQL's rights", async () => {
      const admin = await pgClient(server());
      const watch = await pgClient(server());
      await admin.query(
        "create role offengine_a login; create role offengine_b login;" +
          " create role offengine_c login in role pg_signal_backend",
      );
      const a = await pgClient(server(), { user: "offengine_a" });
      const b = await pgClient(server(), { user: "offengine_b" });
      const c = await pgClient(server(), { user: "offengine_c" });
      const notices: string[] = [];
      b.on("notice", (n) => notices.push(`${n.severity}: ${n.message}`));

      let victim = running(admin, SLEEP);
      await untilActive(watch, pidOf(admin), victim.text);
      const none = await b.query("select pg_cancel_backend(2147483000) as ok");
      expect(none.rows).toEqual([{ ok: false }]);
      expect(notices).toEqual(["WARNING: PID 2147483000 is not a PostgreSQL backend process"]);
      // A superuser's statement: only a superuser may.
      const su = await c.query("select pg_cancel_backend($1)", [pidOf(admin)]).catch((e) => e);
      expect(su).toMatchObject({ code: "42501", message: "permission denied to cancel query" });
      expect(su.detail).toBe(
        "Only roles with the SUPERUSER attribute may cancel queries of roles with the SUPERUSER attribute.",
      );
      const neg = await c.query(`select pg_terminate_backend(${pidOf(a)}, -1)`).catch((e) => e);
      expect(neg).toMatchObject({ code: "22003", message: '"timeout" must not be negative' });
      // Another role's session: refused; pg_signal_backend's member may.
      const other = await b.query("select pg_terminate_backend($1)", [pidOf(a)]).catch((e) => e);
      expect(other).toMatchObject({
        code: "42501",
        message: "permission denied to terminate process",
      });
      expect(other.detail).toBe(
        'Only roles with privileges of the role whose process is being terminated or with privileges of the "pg_signal_backend" role may terminate this process.',
      );
      // pg_stat_activity hides other roles' queries from b, and b cancels nothing through it.
      const seen = await b.query(
        "select pid, query, (select pg_cancel_backend(pid)) as killed from pg_stat_activity where pid = $1",
        [pidOf(admin)],
      ).catch((e) => e);
      expect(seen).toMatchObject({ code: "42501" });
      // A superuser may.
      expect((await watch.query(`select pg_cancel_backend(${pidOf(admin)}) as ok`)).rows)
        .toEqual([{ ok: true }]);
      expect((await victim).code).toBe("57014");

      // The same role, and the member of pg_signal_backend, while the engine is held.
      victim = running(a, SLEEP);
      await untilActive(admin, pidOf(a), victim.text);
      const a2 = await pgClient(server(), { user: "offengine_a" });
      expect((await a2.query(`select pg_cancel_backend(${pidOf(a)}) as ok`)).rows).toEqual([
        { ok: true },
      ]);
      expect((await victim).code).toBe("57014");
      victim = running(a, SLEEP);
      await untilActive(admin, pidOf(a), victim.text);
      expect((await c.query("select pg_cancel_backend($1) as ok", [pidOf(a)])).rows).toEqual([
        { ok: true },
      ]);
      expect((await victim).code).toBe("57014");
      // SET ROLE to a role that may: PostgreSQL checks the current user.
      await admin.query("grant offengine_a to offengine_b");
      const b2 = await pgClient(server(), { user: "offengine_b" });
      await b2.query("set role offengine_a");
      victim = running(a, SLEEP);
      await untilActive(admin, pidOf(a), victim.text);
      expect((await b2.query(`select pg_cancel_backend(${pidOf(a)}) as ok`)).rows).toEqual([
        { ok: true },
      ]);
      expect((await victim).code).toBe("57014");

      for (const x of [a, a2, b, b2, c, watch]) await x.end();
      await admin.query(
        "drop role offengine_a; drop role offengine_b; drop role offengine_c",
      );
      await admin.end();
    });

    test("through a driver's named statements (postgres.js; pgx, asyncpg), and the statement is the session's after", async () => {
      // postgres.js describes a new statement unnamed (Parse/Describe/Sync)
      // and runs it as a named one (Parse/Bind/Execute/Sync); pgx and
      // asyncpg prepare by name (Parse/Describe/Sync), then Bind and Execute
      // it. Those waited for the runaway statement's engine and failed with
      // 55P03 after 5 s (pgx's TestFatalRxError).
      const b = await pgClient(server());
      const sql = postgres({
        host: server().host,
        port: server().port,
        user: "postgres",
        database: "postgres",
        max: 1,
        onnotice: () => {},
      });
      for (const kind of ["terminate", "cancel"] as const) {
        const a = await pgClient(server());
        a.on("error", () => {});
        const victim = running(a, SLEEP);
        await untilActive(b, pidOf(a), victim.text);
        const asked = Date.now();
        const [r] = await sql`select pg_${sql.unsafe(kind)}_backend(${pidOf(a)}) as ok`;
        expect(r).toEqual({ ok: true });
        const { code, at } = await victim;
        expect(code).toBe(kind === "cancel" ? "57014" : "57P01");
        expect(at - asked).toBeLessThan(4000);
        await a.end().catch(() => {});
      }
      // pgx's flow in bytes: a named statement prepared, then bound and run.
      const a = await pgClient(server());
      a.on("error", () => {});
      const raw = await RawConnection.open(server());
      await raw.startup();
      const victim = running(a, SLEEP);
      await untilActive(b, pidOf(a), victim.text);
      const asked = Date.now();
      raw.send(concat(
        message(
          "P",
          concat(cstr("stmtcache_1"), cstr("select pg_cancel_backend($1)"), Uint8Array.of(0, 0)),
        ),
        message("D", concat(Uint8Array.of(0x53), cstr("stmtcache_1"))),
        message("S"),
      ));
      expect(await raw.typesUntil("Z", 3_000)).toBe("1tTZ");
      const pid = new TextEncoder().encode(String(pidOf(a)));
      const bind = concat(
        cstr(""),
        cstr("stmtcache_1"),
        Uint8Array.of(0, 0, 0, 1),
        int32(pid.length),
        pid,
        Uint8Array.of(0, 0),
      );
      raw.send(concat(
        message("B", bind),
        message("E", concat(cstr(""), Uint8Array.of(0, 0, 0, 0))),
        message("S"),
      ));
      expect(await raw.typesUntil("Z", 3_000)).toBe("2DCZ");
      expect((await victim).code).toBe("57014");
      expect(Date.now() - asked).toBeLessThan(4000);
      // With the engine free, the same statement runs there: it was parsed
      // on the engine before the session's first statement that needs it,
      // and pg_prepared_statements shows it.
      raw.send(message("Q", cstr("select name, statement from pg_prepared_statements")));
      const rows: string[] = [];
      for (let m = await raw.next(3_000); m !== null && m.type !== "Z"; m = await raw.next(3_000)) {
        if (m.type !== "D") continue;
        const len = new DataView(m.body.buffer, m.body.byteOffset).getInt32(2);
        rows.push(new TextDecoder().decode(m.body.subarray(6, 6 + len)));
      }
      expect(rows).toEqual(["stmtcache_1"]);
      raw.send(
        concat(
          message("B", bind),
          message("E", concat(cstr(""), Uint8Array.of(0, 0, 0, 0))),
          message("S"),
        ),
      );
      expect(await raw.typesUntil("Z", 3_000)).toBe("2DCZ");
      raw.socket.destroy();
      await sql.end();
      await a.end();
      await b.end();
    });

    test("what comes before a Flush is answered before the Execute after it runs; cancelled, the session stays in step", async () => {
      // pg-cursor (pg-query-stream) sends Parse/Bind/Describe/Flush, then
      // Execute/Flush at once; read as one input, its RowDescription came
      // only when the statement ended, and a cursor closed and cancelled
      // before it had seen one answered with a second Sync, whose
      // ReadyForQuery ended the connection's next query with no rows (as in
      // pg-query-stream's own "should work after cancelling query", under
      // Node). PostgreSQL flushes at the Flush. Hand-built bytes: one write.
      const raw = await RawConnection.open(server());
      const { pid } = await raw.startup();
      const b = await pgClient(server());
      raw.send(concat(
        message("P", concat(cstr(""), cstr("select pg_sleep(30)"), Uint8Array.of(0, 0))),
        message("B", concat(cstr("C_1"), cstr(""), Uint8Array.of(0, 0, 0, 0, 0, 0))),
        message("D", concat(Uint8Array.of(0x50), cstr("C_1"))),
        message("H"),
        message("E", concat(cstr("C_1"), Uint8Array.of(0, 0, 0, 0))),
        message("H"),
      ));
      expect(await raw.typesUntil("T", 5_000)).toBe("12T");
      expect((await b.query("select pg_cancel_backend($1) as ok", [pid])).rows)
        .toEqual([{ ok: true }]);
      const e = (await raw.next(5_000))!;
      expect([e.type, errorFields(e.body).C]).toEqual(["E", "57014"]);
      raw.send(message("S"));
      expect((await raw.next(5_000))!.type).toBe("Z");
      raw.send(message("Q", cstr("select 1 as a")));
      expect(await raw.typesUntil("Z", 5_000)).toBe("TDCZ");
      raw.socket.destroy();
      await b.end();
    });
  });
}
