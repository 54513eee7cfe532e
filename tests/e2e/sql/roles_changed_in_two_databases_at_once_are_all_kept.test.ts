/**
 * Roles are the cluster's, as PostgreSQL's shared pg_authid: roles made
 * and dropped in two databases at the same moment are all there, in every
 * database, afterwards. Before, each database's change was copied over the
 * other's (and two databases copied from one template gave their new roles
 * the same oids): of 40 roles made in each of two databases at once, about
 * 30 of each were left, with no error. A role statement waits for another
 * database's open transaction that changed roles (engine_wait_timeout,
 * then 55P03), and one in a block that began before another database's
 * role change committed fails with 40001, to be retried.
 */

import { expect, test } from "bun:test";
import {
  errorOf,
  pgClient,
  type PgErr,
  sharedServer,
  sleep,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";

useSqlServers({ timeoutMs: 90_000 });

const server = sharedServer({
  conf: ["engine_wait_timeout = 3s", "engine_hold_timeout = 0", ""].join("\n"),
});
const holding = sharedServer({
  conf: ["engine_wait_timeout = 5s", "engine_hold_timeout = 1s", ""].join("\n"),
});

test("roles made and dropped in two databases at once are all kept, everywhere", async () => {
  const s = server();
  const admin = await pgClient(s);
  await admin.query("CREATE DATABASE roles_a");
  await admin.query("CREATE DATABASE roles_b");
  const a = await pgClient(s, { database: "roles_a" });
  const b = await pgClient(s, { database: "roles_b" });
  const N = 25;
  const made = async (c: typeof a, prefix: string) => {
    for (let i = 0; i < N; i++) await c.query(`CREATE ROLE ${prefix}_${i}`);
  };
  await Promise.all([made(a, "two_a"), made(b, "two_b")]);
  const counts = "SELECT count(*) FILTER (WHERE rolname LIKE 'two\\_a\\_%')::int AS a," +
    " count(*) FILTER (WHERE rolname LIKE 'two\\_b\\_%')::int AS b," +
    " count(DISTINCT oid)::int = count(*)::int AS distinct_oids FROM pg_roles";
  for (const c of [admin, a, b]) {
    expect((await c.query(counts)).rows).toEqual([{ a: N, b: N, distinct_oids: true }]);
  }
  const dropped = async (c: typeof a, prefix: string) => {
    for (let i = 0; i < N; i++) await c.query(`DROP ROLE ${prefix}_${i}`);
  };
  // Each drops the other's: every one goes.
  await Promise.all([dropped(a, "two_b"), dropped(b, "two_a")]);
  for (const c of [admin, a, b]) {
    expect((await c.query(counts)).rows).toEqual([{ a: 0, b: 0, distinct_oids: true }]);
  }
  // As migrations make them: in a DO block that skips a role that exists.
  const migrated = async (c: typeof a, prefix: string) => {
    for (let i = 0; i < N; i++) {
      await c.query(
        `DO $$ BEGIN CREATE ROLE ${prefix}_${i}; ` +
          "EXCEPTION WHEN duplicate_object THEN NULL; END $$",
      );
    }
  };
  await Promise.all([migrated(a, "two_a"), migrated(b, "two_b")]);
  for (const c of [admin, a, b]) {
    expect((await c.query(counts)).rows).toEqual([{ a: N, b: N, distinct_oids: true }]);
  }
  await Promise.all([dropped(a, "two_a"), dropped(b, "two_b")]);
  await a.end();
  await b.end();
  await admin.query("DROP DATABASE roles_a");
  await admin.query("DROP DATABASE roles_b");
  await admin.end();
});

test("a role statement waits for another database's transaction that changed roles, and one in an older block is refused", async () => {
  const s = server();
  const admin = await pgClient(s);
  await admin.query("CREATE DATABASE turn_a");
  await admin.query("CREATE DATABASE turn_b");
  const a = await pgClient(s, { database: "turn_a" });
  const b = await pgClient(s, { database: "turn_b" });
  try {
    // a's transaction has made a role: b's CREATE ROLE waits for its end.
    await a.query("BEGIN");
    await a.query("CREATE ROLE turn_1");
    const t0 = performance.now();
    const waiting = b.query("CREATE ROLE turn_2");
    await sleep(500);
    await a.query("COMMIT");
    await waiting;
    expect(performance.now() - t0).toBeGreaterThanOrEqual(450);
    // Past engine_wait_timeout: 55P03, and nothing made.
    await a.query("BEGIN");
    await a.query("ALTER ROLE turn_1 CONNECTION LIMIT 3");
    const timedOut = await errorOf(b.query("CREATE ROLE turn_3"));
    expect([timedOut?.code, timedOut?.message]).toEqual([
      "55P03",
      `canceling statement due to engine wait timeout: roles are being changed by process ${
        (a as unknown as { processID: number }).processID
      }`,
    ]);
    await a.query("COMMIT");

    // b's block began before a's role change committed: its own role
    // change cannot start from a's, and fails with 40001.
    await b.query("BEGIN");
    await b.query("SELECT count(*) FROM pg_class");
    await a.query("CREATE ROLE turn_4");
    const stale = await errorOf(b.query("CREATE ROLE turn_5"));
    expect([stale?.code, stale?.message]).toEqual([
      "40001",
      "could not serialize access due to concurrent update",
    ]);
    await b.query("ROLLBACK");
    // Run again, it works.
    await b.query("CREATE ROLE turn_5");
    for (const c of [admin, a, b]) {
      const names = await c.query(
        "SELECT rolname, rolconnlimit FROM pg_roles WHERE rolname LIKE 'turn\\_%' ORDER BY 1",
      );
      expect(names.rows).toEqual([
        { rolname: "turn_1", rolconnlimit: 3 },
        { rolname: "turn_2", rolconnlimit: -1 },
        { rolname: "turn_4", rolconnlimit: -1 },
        { rolname: "turn_5", rolconnlimit: -1 },
      ]);
    }
  } finally {
    await a.query("ROLLBACK").catch(() => {});
    await b.query("ROLLBACK").catch(() => {});
    for (const r of ["turn_1", "turn_2", "turn_3", "turn_4", "turn_5"]) {
      await admin.query(`DROP ROLE IF EXISTS ${r}`).catch(() => {});
    }
    await a.end();
    await b.end();
    await admin.query("DROP DATABASE turn_a").catch(() => {});
    await admin.query("DROP DATABASE turn_b").catch(() => {});
    await admin.end();
  }
});

test("a session idle in a block that changed roles is ended after engine_hold_timeout when a role statement waits, as an idle holder of an engine is", async () => {
  const s = holding();
  const admin = await pgClient(s);
  await admin.query("CREATE DATABASE hold_a");
  const a = await pgClient(s, { database: "hold_a" });
  const ended = new Promise<PgErr>((resolve) => a.on("error", (e) => resolve(e as PgErr)));
  try {
    await a.query("BEGIN");
    await a.query("CREATE ROLE hold_1");
    const t0 = performance.now();
    await admin.query("CREATE ROLE hold_2");
    const waited = performance.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(900);
    expect(waited).toBeLessThan(4000);
    const e = await ended;
    expect([e.code, e.message]).toEqual([
      "25P03",
      "terminating connection due to idle-in-transaction timeout",
    ]);
    // Its transaction rolled back: hold_1 was never made.
    expect(
      (await admin.query("SELECT rolname FROM pg_roles WHERE rolname LIKE 'hold\\_%' ORDER BY 1"))
        .rows,
    ).toEqual([{ rolname: "hold_2" }]);
  } finally {
    await admin.query("DROP ROLE IF EXISTS hold_1").catch(() => {});
    await admin.query("DROP ROLE IF EXISTS hold_2").catch(() => {});
    await a.end().catch(() => {});
    await admin.query("DROP DATABASE hold_a WITH (FORCE)").catch(() => {});
    await admin.end();
  }
});
