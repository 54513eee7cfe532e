/**
 * Roles and the list of databases are cluster-wide: pgts copies them into
 * every database's engine (pg_authid.ts, pg_database.ts) as its own work,
 * on a backend that still carries the settings of the session that ran
 * there last. A session that SET default_transaction_read_only = on (or
 * SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY) in one database
 * made those copies fail there with "cannot execute DELETE in a read-only
 * transaction": another database's CREATE DATABASE answered that ERROR
 * (the database was created all the same), and a role created elsewhere
 * never reached that database ("could not copy roles to every database" in
 * the log). The copies run READ WRITE now. node-postgres.
 */

import { describe, expect, test } from "bun:test";
import { pgClient, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";

useSqlServers({ timeoutMs: 90_000 });

describe("default server", () => {
  const server = sharedServer({});

  test("CREATE DATABASE and CREATE ROLE while a session of another database defaults to read only", async () => {
    const s = server();
    const admin = await pgClient(s);
    await admin.query("CREATE DATABASE ro_a");
    const a = await pgClient(s, { database: "ro_a" });
    await a.query("SET default_transaction_read_only = on");
    expect((await a.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    // a stays connected, idle: its settings are the ones ro_a's backend carries.
    await admin.query("CREATE DATABASE ro_b");
    await admin.query("CREATE ROLE ro_role");
    await a.query("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY");
    await admin.query("CREATE ROLE ro_role2");
    await admin.query("CREATE DATABASE ro_c");
    const a2 = await pgClient(s, { database: "ro_a" });
    for (let i = 0; i < 50; i++) {
      const n = (await a2.query(
        "SELECT count(*)::int AS n FROM pg_roles WHERE rolname IN ('ro_role', 'ro_role2')",
      )).rows[0].n;
      if (n === 2) break;
      await Bun.sleep(100);
    }
    expect(
      (await a2.query(
        "SELECT rolname FROM pg_roles WHERE rolname LIKE 'ro_role%' ORDER BY 1",
      )).rows.map((r) => r.rolname),
    ).toEqual(["ro_role", "ro_role2"]);
    expect(
      (await a2.query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'ro_%' ORDER BY 1",
      )).rows.map((r) => r.datname),
    ).toEqual(["ro_a", "ro_b", "ro_c"]);
    // The session's own default is still its own.
    expect((await a.query("SHOW transaction_read_only")).rows[0].transaction_read_only).toBe("on");
    for (const c of [a, a2, admin]) await c.end();
  });
});
