/**
 * DROP ROLE looks in every database of the cluster, as PostgreSQL's one
 * pg_shdepend does: a role that owns objects or holds privileges in
 * another database is refused (2BP01) with a line per database, whether
 * that database's engine is open or closed, in a transaction block and
 * through the extended protocol; once REASSIGN OWNED and DROP OWNED have run
 * in each database, it goes. Before, the DROP went through and the next
 * role given the dropped oid owned the other database's tables.
 */

import { expect, test } from "bun:test";
import { errorOf, pgClient, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { waitFor } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

const server = sharedServer({
  conf: ["engine_idle_timeout = 1s", "log_min_messages = debug1", ""].join("\n"),
});

const refusal = (detail: string) => [
  "2BP01",
  'role "dep_r" cannot be dropped because some objects depend on it',
  detail,
];

test("DROP ROLE of a role with objects or privileges in another database is refused, wherever those engines are", async () => {
  const s = server();
  const admin = await pgClient(s);
  try {
    await admin.query("CREATE DATABASE dep_a");
    await admin.query("CREATE DATABASE dep_b");
    await admin.query("CREATE ROLE dep_r");
    const a = await pgClient(s, { database: "dep_a" });
    await a.query("CREATE TABLE t (x int)");
    await a.query("ALTER TABLE t OWNER TO dep_r");
    await a.query("CREATE TABLE u (x int)");
    await a.query("GRANT SELECT ON u TO dep_r");
    await a.end();
    const b = await pgClient(s, { database: "dep_b" });
    await b.query("CREATE SCHEMA dep_s AUTHORIZATION dep_r");
    await b.end();
    await admin.query("CREATE TABLE dep_own (x int)");
    await admin.query("ALTER TABLE dep_own OWNER TO dep_r");

    // Its own database's objects first, then a count for each other database.
    const all = "owner of table dep_own\n2 objects in database dep_a\n1 object in database dep_b";
    const e1 = await errorOf(admin.query("DROP ROLE dep_r"));
    expect([e1?.code, e1?.message, e1?.detail]).toEqual(refusal(all));

    // With dep_a's and dep_b's engines closed (engine_idle_timeout), the same.
    await waitFor("dep_a's and dep_b's engines closed", () => {
      const log = s.log;
      return log.includes('closing the engine of database "dep_a"') &&
        log.includes('closing the engine of database "dep_b"');
    });
    const e2 = await errorOf(admin.query("DROP ROLE IF EXISTS dep_r"));
    expect([e2?.code, e2?.message, e2?.detail]).toEqual(refusal(all));
    const e3 = await errorOf(admin.query({ text: "DROP USER dep_r", values: [] }));
    expect([e3?.code, e3?.message, e3?.detail]).toEqual(refusal(all));
    // In a DO block, as migrations drop roles: the same.
    const e6 = await errorOf(admin.query("DO $$ BEGIN DROP ROLE IF EXISTS dep_r; END $$"));
    expect([e6?.code, e6?.message, e6?.detail]).toEqual(refusal(all));
    // A copy of dep_a has dep_a's objects, as PostgreSQL's copy of a template has.
    await admin.query("CREATE DATABASE dep_copy TEMPLATE dep_a");
    const e5 = await errorOf(admin.query("DROP ROLE dep_r"));
    expect(e5?.detail).toBe(`${all}\n2 objects in database dep_copy`);
    await admin.query("DROP DATABASE dep_copy");

    // In a transaction block: refused, and the block is aborted.
    await admin.query("BEGIN");
    await admin.query("SELECT 1");
    const e4 = await errorOf(admin.query("DROP ROLE dep_r"));
    expect([e4?.code, e4?.message]).toEqual(refusal("").slice(0, 2));
    expect(e4?.detail).toEndWith("2 objects in database dep_a\n1 object in database dep_b");
    expect((await errorOf(admin.query("SELECT 1")))?.code).toBe("25P02");
    await admin.query("ROLLBACK");

    // The role is still there, and still owns what it did.
    const owner = await pgClient(s, { database: "dep_a" });
    expect(
      (await owner.query("SELECT tableowner FROM pg_tables WHERE tablename = 't'")).rows,
    ).toEqual([{ tableowner: "dep_r" }]);
    // Given away and revoked in each database, it goes.
    for (const c of [owner, await pgClient(s, { database: "dep_b" }), admin]) {
      await c.query("REASSIGN OWNED BY dep_r TO postgres");
      await c.query("DROP OWNED BY dep_r");
      if (c !== admin) await c.end();
    }
    await admin.query("DROP ROLE dep_r");
    expect(
      (await admin.query("SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'dep_r'")).rows,
    )
      .toEqual([{ n: 0 }]);
  } finally {
    await admin.query("DROP TABLE IF EXISTS dep_own").catch(() => {});
    await admin.query("DROP DATABASE IF EXISTS dep_a").catch(() => {});
    await admin.query("DROP DATABASE IF EXISTS dep_b").catch(() => {});
    await admin.query("DROP DATABASE IF EXISTS dep_copy").catch(() => {});
    await admin.query("DROP ROLE IF EXISTS dep_r").catch(() => {});
    await admin.end();
  }
});

test("DROP ROLE of a role with nothing elsewhere, or of none, is as before", async () => {
  const s = server();
  const admin = await pgClient(s);
  try {
    await admin.query("CREATE DATABASE dep_c");
    await admin.query("CREATE ROLE dep_plain");
    await admin.query("CREATE ROLE dep_here");
    await admin.query("CREATE TABLE dep_here_t (x int)");
    await admin.query("ALTER TABLE dep_here_t OWNER TO dep_here");
    // Only its own database's: the engine's own refusal, as before.
    const e = await errorOf(admin.query("DROP ROLE dep_here"));
    expect([e?.code, e?.detail]).toEqual(["2BP01", "owner of table dep_here_t"]);
    await admin.query("DROP ROLE dep_plain, dep_gone_never_was").catch(() => {});
    expect((await admin.query("DROP ROLE IF EXISTS dep_plain, dep_none")).command).toBe("DROP");
    expect(
      (await admin.query("SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'dep_plain'"))
        .rows,
    )
      .toEqual([{ n: 0 }]);
  } finally {
    await admin.query("DROP TABLE IF EXISTS dep_here_t").catch(() => {});
    await admin.query("DROP ROLE IF EXISTS dep_here").catch(() => {});
    await admin.query("DROP DATABASE IF EXISTS dep_c").catch(() => {});
    await admin.end();
  }
});
