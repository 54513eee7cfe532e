/**
 * Many databases in one cluster, as PostgreSQL has them: CREATE DATABASE
 * copies a template (template1 by default), each database is served by an
 * engine of its own, every database lists them all, and DROP, ALTER,
 * createdb and dropdb behave as PostgreSQL's, errors included (55006,
 * 42P04, 42501, 3D000). The pools under the default server and --adapter
 * inproc (where the engines run in the server's process), the rest, which
 * is the same code under both, under the default server.
 */

import { describe, expect, test } from "bun:test";
import pg from "pg";
import postgres from "postgres";
import {
  connectError,
  errorOf,
  PG_BIN,
  pgClient,
  pgConfig,
  type PgErr,
  psql,
  sharedServer,
  startSqlServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ENGINE_TEST_ADAPTERS, waitFor } from "../../helpers/pgts.ts";

/** Retries `ok` until it holds (a reload reaches the server a moment after `pgts reload` returns). */
async function waitForHba(ok: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100 && !(await ok()); i++) await new Promise((r) => setTimeout(r, 100));
}

useSqlServers({ timeoutMs: 90_000 });

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("a template cloned into four databases serves a pool on each at once, each with its own data; DROP with and without FORCE", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("CREATE DATABASE base");
      const b = await pgClient(s, { database: "base" });
      await b.query("CREATE TABLE items (db text, n int)");
      await b.query("INSERT INTO items VALUES ('base', 0)");
      await b.end();
      const names = ["t1", "t2", "t3", "t4"];
      for (const n of names) await admin.query(`CREATE DATABASE ${n} TEMPLATE base`);

      const pools = names.map((database) =>
        new pg.Pool({ ...pgConfig(s, { database }), max: 2, connectionTimeoutMillis: 30_000 })
      );
      for (const p of pools) p.on("error", () => {});
      try {
        await Promise.all(pools.map(async (p, i) => {
          for (let n = 1; n <= 10; n++) {
            await p.query("INSERT INTO items VALUES ($1, $2)", [names[i], n]);
          }
        }));
        for (const [i, p] of pools.entries()) {
          const r = await p.query(
            "SELECT current_database() AS db, count(*)::int AS rows," +
              " count(*) FILTER (WHERE db = $1)::int AS mine FROM items",
            [names[i]],
          );
          expect(r.rows[0]).toEqual({ db: names[i], rows: 11, mine: 10 });
        }
        // One cluster: every database has its system identifier.
        const ids = await Promise.all(
          [admin, ...pools].map((c) =>
            c.query("SELECT system_identifier::text AS id FROM pg_control_system()")
          ),
        );
        expect(new Set(ids.map((r) => r.rows[0].id)).size).toBe(1);
        const listed = await pools[0]!.query("SELECT datname FROM pg_database ORDER BY datname");
        expect(listed.rows.map((r) => r.datname)).toEqual(
          ["base", "postgres", "t1", "t2", "t3", "t4", "template0", "template1"],
        );

        // A database with sessions is not dropped; WITH (FORCE) ends them (57P01).
        const held = await pools[0]!.connect();
        const busy = await errorOf(admin.query("DROP DATABASE t1"));
        expect(busy?.code).toBe("55006");
        expect(busy?.message).toBe('database "t1" is being accessed by other users');
        expect(busy?.detail).toMatch(
          /^There (is 1 other session|are \d+ other sessions) using the database\.$/,
        );
        const ended = new Promise<PgErr>((resolve) => held.on("error", (e) => resolve(e)));
        await admin.query("DROP DATABASE t1 WITH (FORCE)");
        expect((await ended).code).toBe("57P01");
        held.release(true);
      } finally {
        await Promise.all(pools.map((p) => p.end().catch(() => {})));
      }
      for (const n of ["t2", "t3", "t4"]) await admin.query(`DROP DATABASE ${n}`);
      const notices: string[] = [];
      admin.on("notice", (n) => notices.push(n.message ?? ""));
      await admin.query("DROP DATABASE IF EXISTS t2");
      expect(notices).toContain('database "t2" does not exist, skipping');
      const gone = await connectError(s, { database: "t3" });
      expect(gone?.code).toBe("3D000");
      expect(gone?.message).toBe('database "t3" does not exist');
      const left = await admin.query("SELECT datname FROM pg_database ORDER BY datname");
      expect(left.rows.map((r) => r.datname)).toEqual([
        "base",
        "postgres",
        "template0",
        "template1",
      ]);
    });

    test("roles are cluster-wide: created, granted and dropped in one database, seen at login to another", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("CREATE DATABASE roles_a");
      await admin.query("CREATE DATABASE roles_b");
      const a = await pgClient(s, { database: "roles_a" });
      await a.query("CREATE ROLE roamer LOGIN CREATEDB");
      await a.query("CREATE ROLE crew");
      await a.query("GRANT crew TO roamer");
      const b = await pgClient(s, { user: "roamer", database: "roles_b" });
      const r = await b.query(
        "SELECT current_user AS u, current_database() AS db," +
          " pg_has_role('roamer', 'crew', 'MEMBER') AS member," +
          " (SELECT rolcreatedb FROM pg_roles WHERE rolname = 'roamer') AS createdb",
      );
      expect(r.rows[0]).toEqual({ u: "roamer", db: "roles_b", member: true, createdb: true });
      // CREATEDB granted in roles_a lets it create a database from roles_b.
      await b.query("CREATE DATABASE roamers_own");
      const own = await admin.query(
        "SELECT pg_get_userbyid(datdba) AS o FROM pg_database WHERE datname = 'roamers_own'",
      );
      expect(own.rows[0].o).toBe("roamer");
      await b.query("DROP DATABASE roamers_own");
      await b.end();

      await admin.query("DROP ROLE roamer");
      for (const database of ["roles_a", "roles_b", "postgres"]) {
        const e = await connectError(s, { user: "roamer", database });
        expect({ database, code: e?.code, message: e?.message }).toEqual({
          database,
          code: "28000",
          message: 'role "roamer" does not exist',
        });
      }
      expect(
        (await a.query("SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'roamer'")).rows[0]
          .n,
      )
        .toBe(0);
      await a.end();
    });

    test("a role made or dropped in a DO block or a function is the cluster's too", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("CREATE DATABASE roles_do");
      const a = await pgClient(s, { database: "roles_do" });
      // The migrations' idiom: create the role unless it exists.
      await a.query(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_do') THEN" +
          " CREATE ROLE app_do LOGIN; END IF; END $$",
      );
      await a.query(
        "CREATE FUNCTION make_crew() RETURNS void LANGUAGE sql AS" +
          " $$ CREATE ROLE crew_do; GRANT crew_do TO app_do $$",
      );
      await a.query("SELECT make_crew()");
      const b = await pgClient(s, { user: "app_do", database: "postgres" });
      const r = await b.query(
        "SELECT current_user AS u, pg_has_role('app_do', 'crew_do', 'MEMBER') AS member",
      );
      expect(r.rows[0]).toEqual({ u: "app_do", member: true });
      await b.end();
      // ALTER ROLE … SET in a DO block: the role's setting in every database.
      await a.query(
        "DO $$ BEGIN EXECUTE 'ALTER ROLE app_do SET work_mem = ''6MB'''; END $$",
      );
      const set = await pgClient(s, { user: "app_do", database: "postgres" });
      expect((await set.query("SHOW work_mem")).rows).toEqual([{ work_mem: "6MB" }]);
      await set.end();
      // A rolled-back drop leaves it; a committed one ends its logins everywhere.
      await a.query("BEGIN");
      await a.query("DO $$ BEGIN DROP ROLE crew_do; END $$");
      await a.query("ROLLBACK");
      const kept = await admin.query(
        "SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'crew_do'",
      );
      expect(kept.rows[0].n).toBe(1);
      await a.query("DO $$ BEGIN DROP ROLE crew_do; DROP ROLE app_do; END $$");
      const e = await connectError(s, { user: "app_do", database: "postgres" });
      expect({ code: e?.code, message: e?.message }).toEqual({
        code: "28000",
        message: 'role "app_do" does not exist',
      });
      const gone = await admin.query(
        "SELECT count(*)::int AS n FROM pg_roles WHERE rolname IN ('app_do', 'crew_do')",
      );
      expect(gone.rows[0].n).toBe(0);
      await a.end();
      await admin.end();
    });

    test("a role's comment and GRANT SET ON PARAMETER are the cluster's too", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("CREATE DATABASE shared_a");
      await admin.query("CREATE DATABASE shared_b");
      const a = await pgClient(s, { database: "shared_a" });
      await a.query("CREATE ROLE tuner LOGIN");
      await a.query("COMMENT ON ROLE tuner IS 'tunes the log'");
      await a.query("GRANT SET ON PARAMETER log_statement TO tuner");
      const b = await pgClient(s, { database: "shared_b" });
      const comment = await b.query(
        "SELECT pg_catalog.shobj_description('tuner'::regrole, 'pg_authid') AS c",
      );
      expect(comment.rows[0].c).toBe("tunes the log");
      const tuner = await pgClient(s, { user: "tuner", database: "shared_b" });
      await tuner.query("SET log_statement = 'all'");
      await b.query("REVOKE SET ON PARAMETER log_statement FROM tuner");
      const refused = await pgClient(s, { user: "tuner", database: "shared_a" });
      const e = await refused.query("SET log_statement = 'all'").catch((e) => e);
      expect({ code: e.code, message: e.message }).toEqual({
        code: "42501",
        message: 'permission denied to set parameter "log_statement"',
      });
      for (const c of [a, b, tuner, refused, admin]) await c.end();
    });

    test("ALTER DATABASE … SET of the session's own database inside a block is the block's", async () => {
      const s = server();
      await pgClient(s).then(async (c) => {
        await c.query("CREATE DATABASE set_in_block");
        await c.end();
      });
      const c = await pgClient(s, { database: "set_in_block" });
      const fresh = async () => {
        const n = await pgClient(s, { database: "set_in_block" });
        const v = (await n.query("SHOW work_mem")).rows[0].work_mem;
        await n.end();
        return v;
      };
      await c.query("BEGIN");
      await c.query("ALTER DATABASE set_in_block SET work_mem = '3MB'");
      await c.query("ROLLBACK");
      expect(await fresh()).toBe("4MB");
      await c.query("BEGIN");
      await c.query("ALTER DATABASE set_in_block SET work_mem = '3MB'");
      await c.query("COMMIT");
      expect(await fresh()).toBe("3MB");
      // Another database's, in a block: the cluster's to carry out, which cannot roll back.
      await c.query("BEGIN");
      const refused = await errorOf(c.query("ALTER DATABASE postgres SET work_mem = '3MB'"));
      expect(refused?.code).toBe("25001");
      await c.query("ROLLBACK");
      await c.end();
      const admin = await pgClient(s);
      await admin.query("DROP DATABASE set_in_block");
      await admin.end();
    });

    test("ALTER ROLE … IN DATABASE another SET reaches that database's logins, above the role's and the database's own values", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("CREATE DATABASE role_in_db");
      await admin.query("CREATE ROLE rid_a LOGIN");
      await admin.query("CREATE ROLE rid_b LOGIN");
      const show = async (user: string, database: string) => {
        const n = await pgClient(s, { user, database });
        const r = await n.query(
          "SELECT current_setting('work_mem') AS w, current_setting('temp_buffers') AS t",
        );
        await n.end();
        return r.rows[0];
      };
      try {
        // PostgreSQL's order: role in database > role > database > all.
        await admin.query("ALTER DATABASE role_in_db SET work_mem = '3MB'");
        await admin.query("ALTER ROLE rid_a SET work_mem = '7MB'");
        await admin.query("ALTER ROLE rid_a IN DATABASE role_in_db SET work_mem = '5MB'");
        await admin.query("ALTER USER rid_b IN DATABASE role_in_db SET work_mem = '6MB'");
        await admin.query("ALTER ROLE ALL IN DATABASE role_in_db SET temp_buffers = '2MB'");
        expect(await show("rid_a", "role_in_db")).toEqual({ w: "5MB", t: "2MB" });
        expect(await show("rid_b", "role_in_db")).toEqual({ w: "6MB", t: "2MB" });
        expect(await show("rid_a", "postgres")).toEqual({ w: "7MB", t: "8MB" });
        expect(await show("postgres", "role_in_db")).toEqual({ w: "3MB", t: "2MB" });
        // PostgreSQL's errors, from the database's engine.
        const noRole = await errorOf(
          admin.query("ALTER ROLE rid_none IN DATABASE role_in_db SET work_mem = '1MB'"),
        );
        expect([noRole?.code, noRole?.message]).toEqual([
          "42704",
          'role "rid_none" does not exist',
        ]);
        const noDb = await errorOf(
          admin.query("ALTER ROLE rid_a IN DATABASE db_none SET work_mem = '1MB'"),
        );
        expect([noDb?.code, noDb?.message]).toEqual(["3D000", 'database "db_none" does not exist']);
        const bad = await errorOf(
          admin.query("ALTER ROLE rid_a IN DATABASE role_in_db SET work_mem = 'lots'"),
        );
        expect(bad?.code).toBe("22023");
        // In a block it cannot reach the other engine: refused, not lost.
        await admin.query("BEGIN");
        const inBlock = await errorOf(
          admin.query("ALTER ROLE rid_a IN DATABASE role_in_db SET work_mem = '9MB'"),
        );
        expect(inBlock?.code).toBe("25001");
        await admin.query("ROLLBACK");
        // A dropped role's settings go with it; RESET takes the value away.
        await admin.query("DROP ROLE rid_b");
        const own = await pgClient(s, { database: "role_in_db" });
        const rows = await own.query(
          "SELECT setconfig FROM pg_db_role_setting WHERE setrole <> 0 ORDER BY 1",
        );
        expect(rows.rows.map((r) => r.setconfig)).toEqual([["work_mem=5MB"], ["work_mem=7MB"]]);
        await own.end();
        await admin.query("ALTER ROLE rid_a IN DATABASE role_in_db RESET work_mem");
        expect(await show("rid_a", "role_in_db")).toEqual({ w: "7MB", t: "2MB" });
        // FROM CURRENT is the session's value, whatever the other engine last ran with.
        await admin.query("SET work_mem = '11MB'");
        await admin.query("ALTER ROLE rid_a IN DATABASE role_in_db SET work_mem FROM CURRENT");
        expect(await show("rid_a", "role_in_db")).toEqual({ w: "11MB", t: "2MB" });
        // A copy of the database has none of its settings (PostgreSQL keys them by database).
        await admin.query("CREATE DATABASE role_in_db_copy TEMPLATE role_in_db");
        expect(await show("rid_a", "role_in_db_copy")).toEqual({ w: "7MB", t: "8MB" });
        expect(await show("postgres", "role_in_db_copy")).toEqual({ w: "4MB", t: "8MB" });
      } finally {
        await admin.query("DROP DATABASE role_in_db").catch(() => {});
        await admin.query("DROP DATABASE IF EXISTS role_in_db_copy").catch(() => {});
        await admin.query("DROP ROLE IF EXISTS rid_a").catch(() => {});
        await admin.query("DROP ROLE IF EXISTS rid_b").catch(() => {});
        await admin.end();
      }
    });

    test("a database's owner stays its owner when renamed, cannot be dropped (2BP01) and is replaced by REASSIGN OWNED, from any database", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("CREATE ROLE own_a LOGIN");
      await admin.query("CREATE DATABASE owned_db OWNER own_a");
      await admin.query("CREATE DATABASE other_db");
      const other = await pgClient(s, { database: "other_db" });
      const ownerSeen = async () => {
        const shown = [];
        for (const database of ["postgres", "owned_db", "other_db"]) {
          const c = await pgClient(s, { database });
          shown.push(
            (await c.query(
              "SELECT datdba::regrole::text AS o FROM pg_database WHERE datname = 'owned_db'",
            )).rows[0].o,
          );
          await c.end();
        }
        return shown;
      };
      try {
        // Renamed in one database: the owner everywhere, who may still alter it.
        // Every engine shows it once free (the copy is not awaited, as for GRANT … ON DATABASE).
        const everywhere = (o: string) =>
          waitFor(`${o} as owner_db's owner everywhere`, async () => {
            const seen = await ownerSeen();
            return seen.every((x) => x === o) ? seen : false;
          });
        await other.query("ALTER ROLE own_a RENAME TO own_b");
        expect(await everywhere("own_b")).toEqual(["own_b", "own_b", "own_b"]);
        const b = await pgClient(s, { user: "own_b" });
        await b.query("ALTER DATABASE owned_db SET work_mem = '2MB'");
        await b.query("COMMENT ON DATABASE owned_db IS 'b''s'");
        // A role that is no superuser may REASSIGN what it owns: pgts's own
        // read of the databases' owners after it reads pg_authid as the
        // superuser (it failed as the session's role: "engine failure:
        // permission denied for table pg_authid").
        await b.query("REASSIGN OWNED BY own_b TO own_b");
        expect((await b.query("SELECT current_user AS u")).rows).toEqual([{ u: "own_b" }]);
        await b.end();
        // PostgreSQL's refusal, from any database, in a DO block too.
        for (
          const [c, sql] of [
            [admin, "DROP ROLE own_b"],
            [other, "DROP ROLE own_b"],
            [other, "DO $$ BEGIN DROP ROLE own_b; END $$"],
          ] as const
        ) {
          const e = await errorOf(c.query(sql));
          expect([e?.code, e?.message, e?.detail]).toEqual([
            "2BP01",
            'role "own_b" cannot be dropped because some objects depend on it',
            "owner of database owned_db",
          ]);
        }
        // REASSIGN OWNED in another database gives the database away; then the role goes.
        await other.query("REASSIGN OWNED BY own_b TO postgres");
        expect(await everywhere("postgres")).toEqual(["postgres", "postgres", "postgres"]);
        await admin.query("DROP ROLE own_b");
      } finally {
        await other.end();
        await admin.query("DROP DATABASE IF EXISTS owned_db").catch(() => {});
        await admin.query("DROP DATABASE IF EXISTS other_db").catch(() => {});
        await admin.query("DROP ROLE IF EXISTS own_b").catch(() => {});
        await admin.end();
      }
    });

    test("a role with privileges on databases cannot be dropped (2BP01) until DROP OWNED, from any database, revokes them everywhere", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("CREATE ROLE priv_a LOGIN");
      await admin.query("CREATE ROLE priv_b LOGIN");
      await admin.query("CREATE DATABASE priv_one");
      await admin.query("CREATE DATABASE priv_two");
      await admin.query("GRANT CONNECT, TEMP ON DATABASE priv_one TO priv_a");
      await admin.query("GRANT CREATE ON DATABASE priv_two TO priv_a WITH GRANT OPTION");
      const a = await pgClient(s, { user: "priv_a", database: "priv_two" });
      await a.query("GRANT CREATE ON DATABASE priv_two TO priv_b");
      await a.end();
      const two = await pgClient(s, { database: "priv_two" });
      const aclsIn = async (database: string) => {
        const c = await pgClient(s, { database });
        const r = await c.query(
          "SELECT datacl::text AS acl FROM pg_database WHERE datname LIKE 'priv_%' ORDER BY datname",
        );
        await c.end();
        return r.rows.map((x) => x.acl);
      };
      try {
        const dropA = await errorOf(admin.query("DROP ROLE priv_a"));
        expect([dropA?.code, dropA?.message, dropA?.detail?.split("\n").sort()]).toEqual([
          "2BP01",
          'role "priv_a" cannot be dropped because some objects depend on it',
          ["privileges for database priv_one", "privileges for database priv_two"],
        ]);
        const dropB = await errorOf(two.query("DROP ROLE priv_b"));
        expect(dropB?.detail).toBe("privileges for database priv_two");
        // A privilege list long enough to put ON DATABASE far in still reaches that database.
        await admin.query("GRANT CONNECT ON DATABASE priv_one TO priv_b WITH GRANT OPTION");
        await admin.query(
          "REVOKE GRANT OPTION FOR CONNECT, TEMPORARY, CREATE ON DATABASE priv_one FROM priv_b",
        );
        await admin.query("REVOKE CONNECT ON DATABASE priv_one FROM priv_b");
        // DROP OWNED in one database revokes the role's privileges (and what it granted) on all.
        await two.query("DROP OWNED BY priv_a");
        const defaults = "{=Tc/postgres,postgres=CTc/postgres}";
        for (const database of ["postgres", "priv_one", "priv_two"]) {
          await waitFor(`the privileges revoked as ${database} shows them`, async () => {
            const acls = await aclsIn(database);
            return acls.every((x) => x === defaults) ? acls : false;
          });
        }
        await admin.query("DROP ROLE priv_a");
        await admin.query("DROP ROLE priv_b");
      } finally {
        await two.end();
        await admin.query("DROP DATABASE IF EXISTS priv_one").catch(() => {});
        await admin.query("DROP DATABASE IF EXISTS priv_two").catch(() => {});
        await admin.query("DROP ROLE IF EXISTS priv_a").catch(() => {});
        await admin.query("DROP ROLE IF EXISTS priv_b").catch(() => {});
        await admin.end();
      }
    });

    test("a role's CONNECTION LIMIT counts its sessions in every database: FATAL 53300 past it, a slot back once one leaves", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("CREATE ROLE lim_r LOGIN CONNECTION LIMIT 2");
      await admin.query("CREATE DATABASE lim_a");
      await admin.query("CREATE DATABASE lim_b");
      const open: Awaited<ReturnType<typeof pgClient>>[] = [];
      try {
        open.push(await pgClient(s, { user: "lim_r", database: "lim_a" }));
        open.push(await pgClient(s, { user: "lim_r", database: "lim_b" }));
        for (const database of ["lim_a", "lim_b", "postgres"]) {
          const e = await connectError(s, { user: "lim_r", database });
          expect([e?.code, e?.severity, e?.message]).toEqual([
            "53300",
            "FATAL",
            'too many connections for role "lim_r"',
          ]);
        }
        await open.pop()!.end();
        await waitFor("lim_r's slot back", async () => {
          const e = await connectError(s, { user: "lim_r", database: "postgres" });
          return e === null;
        });
        // Changed in any database, it holds at the next login; a superuser has none.
        await admin.query("ALTER ROLE lim_r CONNECTION LIMIT 1");
        const one = await connectError(s, { user: "lim_r", database: "lim_b" });
        expect(one?.message).toBe('too many connections for role "lim_r"');
        await admin.query("ALTER ROLE postgres CONNECTION LIMIT 0");
        const su = await pgClient(s, { database: "lim_b" });
        await su.end();
        await admin.query("ALTER ROLE postgres CONNECTION LIMIT -1");
      } finally {
        for (const c of open) await c.end().catch(() => {});
        await admin.query("DROP DATABASE IF EXISTS lim_a").catch(() => {});
        await admin.query("DROP DATABASE IF EXISTS lim_b").catch(() => {});
        await admin.query("DROP ROLE IF EXISTS lim_r").catch(() => {});
        await admin.end();
      }
    });

    test("a role made in one database is there for the very next statement of a session in another", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("CREATE DATABASE next_stmt");
      const other = await pgClient(s, { database: "next_stmt" });
      try {
        for (let i = 0; i < 15; i++) {
          await admin.query(`CREATE ROLE next_r${i}`);
          const seen = await other.query(`SELECT 'next_r${i}'::regrole::text AS r`);
          expect(seen.rows).toEqual([{ r: `next_r${i}` }]);
          await other.query(`GRANT CONNECT ON DATABASE next_stmt TO next_r${i}`);
          await admin.query(`ALTER ROLE next_r${i} RENAME TO next_q${i}`);
          const renamed = await other.query(
            `SELECT rolname FROM pg_roles WHERE oid = 'next_q${i}'::regrole`,
          );
          expect(renamed.rows).toEqual([{ rolname: `next_q${i}` }]);
        }
        // Made in a database other than "postgres" and named at once by a
        // database command, whose roles are looked up in "postgres"'s engine
        // (42704 "role does not exist" seven times in eight before;
        // PostgreSQL 18's regression test database).
        await admin.query("CREATE DATABASE next_owned");
        for (let i = 0; i < 5; i++) {
          await other.query(`CREATE ROLE next_o${i}`);
          await other.query(`ALTER DATABASE next_owned OWNER TO next_o${i}`);
        }
        await other.query("CREATE ROLE next_o5");
        await other.query("CREATE DATABASE next_owned5 OWNER next_o5");
      } finally {
        await other.end();
        await admin.query("DROP DATABASE next_stmt").catch(() => {});
        await admin.query("DROP DATABASE IF EXISTS next_owned").catch(() => {});
        await admin.query("DROP DATABASE IF EXISTS next_owned5").catch(() => {});
        for (let i = 0; i < 15; i++) {
          await admin.query(`DROP ROLE IF EXISTS next_q${i}, next_r${i}`).catch(() => {});
        }
        for (let i = 0; i < 6; i++) {
          await admin.query(`DROP ROLE IF EXISTS next_o${i}`).catch(() => {});
        }
        await admin.end();
      }
    });

    test("COMMENT ON DATABASE is the database's, shown in every database, and only its owner's to make", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("CREATE DATABASE noted");
      const described = async (c: pg.Client, db: string) =>
        (await c.query(
          "SELECT pg_catalog.shobj_description(oid, 'pg_database') AS c FROM pg_database" +
            " WHERE datname = $1",
          [db],
        )).rows[0].c;
      // initdb's comments, in every database, template1's engine opened or not.
      const t1 = await pgClient(s, { database: "template1" });
      for (const c of [t1, admin]) {
        expect(await described(c, "template1")).toBe("default template for new databases");
        expect(await described(c, "postgres")).toBe("default administrative connection database");
      }
      await t1.end();
      // Made from another database, it is the named database's own.
      const made = await admin.query("COMMENT ON DATABASE noted IS 'from postgres'");
      expect(made.command).toBe("COMMENT");
      const noted = await pgClient(s, { database: "noted" });
      expect(await described(noted, "noted")).toBe("from postgres");
      await waitFor(
        "the comment in postgres",
        async () => (await described(admin, "noted")) === "from postgres",
      );
      // Made in the database itself, and on another from there.
      await noted.query("COMMENT ON DATABASE noted IS 'its own'");
      await noted.query("COMMENT ON DATABASE postgres IS 'the main one'");
      expect(await described(admin, "postgres")).toBe("the main one");
      await waitFor(
        "both comments in postgres and noted",
        async () =>
          (await described(admin, "noted")) === "its own" &&
          (await described(noted, "postgres")) === "the main one",
      );
      // PostgreSQL's check, in the named database's engine: only its owner may.
      await admin.query("CREATE ROLE commenter LOGIN");
      const other = await pgClient(s, { user: "commenter" });
      const refused = await errorOf(other.query("COMMENT ON DATABASE noted IS 'not mine'"));
      expect({ code: refused?.code, message: refused?.message }).toEqual({
        code: "42501",
        message: "must be owner of database noted",
      });
      const missing = await errorOf(admin.query("COMMENT ON DATABASE nowhere IS 'x'"));
      expect(missing?.code).toBe("3D000");
      await admin.query("COMMENT ON DATABASE postgres IS NULL");
      for (const c of [noted, other]) await c.end();
      await admin.query("DROP DATABASE noted");
      await admin.query("DROP ROLE commenter");
      await admin.end();
    });

    test("REVOKE CONNECT … FROM PUBLIC keeps out a role without CONNECT, with PostgreSQL's FATAL 42501", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("CREATE DATABASE guarded");
      await admin.query("CREATE ROLE outsider LOGIN");
      await admin.query("CREATE ROLE insiders");
      await admin.query("CREATE ROLE insider LOGIN IN ROLE insiders");
      // From another database, as a query of its own: carried out on guarded's engine.
      const revoked = await admin.query("REVOKE CONNECT ON DATABASE guarded FROM PUBLIC");
      expect(revoked.command).toBe("REVOKE");
      expect((await connectError(s, { user: "outsider", database: "guarded" }))?.code).toBe(
        "42501",
      );
      // Inside a transaction block or beside other statements: refused, with what to do.
      await admin.query("BEGIN");
      const inBlock = await admin.query("GRANT CONNECT ON DATABASE guarded TO PUBLIC")
        .catch((e) => e);
      await admin.query("ROLLBACK");
      expect(inBlock).toMatchObject({
        code: "0A000",
        message:
          'GRANT and REVOKE on database "guarded" cannot run here: inside a transaction block, with other statements or in a function',
      });
      // PostgreSQL's errors: no such database; not the owner.
      const missing = await admin.query("GRANT CONNECT ON DATABASE nosuchdb TO PUBLIC")
        .catch((e) => e);
      expect({ code: missing.code, message: missing.message }).toEqual({
        code: "3D000",
        message: 'database "nosuchdb" does not exist',
      });
      // Not the owner: PostgreSQL's WARNING while it holds a privilege there
      // (TEMPORARY, through PUBLIC), its 42501 once it holds none.
      const outsider0 = await pgClient(s, { user: "outsider", database: "postgres" });
      const notices: string[] = [];
      outsider0.on("notice", (n) => notices.push(`${n.severity}: ${n.message}`));
      const warned = await outsider0.query("GRANT CONNECT ON DATABASE guarded TO outsider");
      expect(warned.command).toBe("GRANT");
      expect(notices).toEqual(['WARNING: no privileges were granted for "guarded"']);
      await admin.query("REVOKE TEMPORARY ON DATABASE guarded FROM PUBLIC");
      const notOwner = await outsider0.query("GRANT CONNECT ON DATABASE guarded TO outsider")
        .catch((e) => e);
      await outsider0.end();
      expect({ code: notOwner.code, message: notOwner.message }).toEqual({
        code: "42501",
        message: "permission denied for database guarded",
      });
      const own = await pgClient(s, { database: "guarded" });
      // Several databases in one statement, the session's own among them.
      await admin.query("GRANT CONNECT ON DATABASE guarded, postgres TO insiders");
      const e = await connectError(s, { user: "outsider", database: "guarded" });
      expect({ code: e?.code, message: e?.message, detail: e?.detail }).toEqual({
        code: "42501",
        message: 'permission denied for database "guarded"',
        detail: "User does not have CONNECT privilege.",
      });
      // A member of a role with CONNECT, and a superuser, come in; the outsider elsewhere too.
      const insider = await pgClient(s, { user: "insider", database: "guarded" });
      expect((await insider.query("SELECT current_user AS u")).rows[0].u).toBe("insider");
      await insider.end();
      const outsider = await pgClient(s, { user: "outsider", database: "postgres" });
      await outsider.end();
      // Every database's pg_database shows guarded's privileges as guarded's own does.
      const aclIn = async (c: typeof own) =>
        (await c.query("SELECT datacl::text AS acl FROM pg_database WHERE datname = 'guarded'"))
          .rows[0].acl;
      const acl = await aclIn(own);
      expect(acl).toContain("insiders=c/postgres");
      await waitFor("the privileges in postgres", async () => (await aclIn(admin)) === acl);
      // GRANT back to PUBLIC: the outsider comes in.
      await own.query("GRANT CONNECT ON DATABASE guarded TO PUBLIC");
      const again = await aclIn(own);
      await waitFor("the privileges in postgres", async () => (await aclIn(admin)) === again);
      const back = await pgClient(s, { user: "outsider", database: "guarded" });
      await back.end();
      // The same REVOKE in a DO block (where pgts does not read the statement).
      await own.query("DO $$ BEGIN REVOKE CONNECT ON DATABASE guarded FROM PUBLIC; END $$");
      expect((await connectError(s, { user: "outsider", database: "guarded" }))?.code).toBe(
        "42501",
      );
      await own.end();
      // A new owner takes the old one's privileges, as grantor too (PostgreSQL's aclnewowner).
      await admin.query("ALTER DATABASE guarded OWNER TO insiders");
      await waitFor("the new owner's privileges", async () => {
        const after = await aclIn(admin);
        return after.includes("insiders=CTc/insiders") && !after.includes("/postgres");
      });
      // A database made from it starts with the default privileges, as PostgreSQL's does.
      await admin.query("CREATE DATABASE from_guarded TEMPLATE guarded");
      const child = await pgClient(s, { user: "outsider", database: "from_guarded" });
      const childAcl = (c: typeof child) =>
        c.query("SELECT datacl FROM pg_database WHERE datname = 'from_guarded'");
      expect((await childAcl(child)).rows).toEqual([{ datacl: null }]);
      expect((await childAcl(admin)).rows).toEqual([{ datacl: null }]);
      await child.end();
      await admin.end();
    });

    if (adapter !== undefined) return;

    test("postgres.js, which sends every statement in an extended batch, creates and drops a database", async () => {
      const s = server();
      const sql = postgres({ host: s.host, port: s.port, user: "postgres", database: "postgres" });
      try {
        await sql`CREATE DATABASE by_postgres_js`;
        const other = postgres({
          host: s.host,
          port: s.port,
          user: "postgres",
          database: "by_postgres_js",
        });
        expect(await other`SELECT current_database() AS db`).toEqual([{ db: "by_postgres_js" }]);
        await other.end();
        const dup = await sql`CREATE DATABASE by_postgres_js`.then(() => null, (e) => e as PgErr);
        expect(dup?.code).toBe("42P04");
        await sql`DROP DATABASE by_postgres_js`;
        const gone = await sql`DROP DATABASE by_postgres_js`.then(() => null, (e) => e as PgErr);
        expect(gone?.code).toBe("3D000");
      } finally {
        await sql.end();
      }
    });

    test("pg_hba.conf's database column names real databases", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("CREATE DATABASE hba_open");
      await admin.query("CREATE DATABASE hba_closed");
      await admin.query("CREATE ROLE hba_user LOGIN");
      const hba = join(s.dataDir, "pg_hba.conf");
      const before = readFileSync(hba, "utf8");
      writeFileSync(
        hba,
        "local all all trust\nhost hba_closed hba_user 127.0.0.1/32 reject\n" +
          "host hba_open,postgres all 127.0.0.1/32 trust\n",
      );
      try {
        const from = s.log.length;
        expect((await s.reload()).code).toBe(0);
        await s.waitForLog(/received SIGHUP, reloading configuration files/, { from });
        await waitForHba(async () =>
          (await connectError(s, { user: "hba_user", database: "hba_closed" }))?.code === "28000"
        );
        const closed = await connectError(s, { user: "hba_user", database: "hba_closed" });
        expect(closed?.message).toBe(
          'pg_hba.conf rejects connection for host "127.0.0.1", user "hba_user", database "hba_closed", no encryption',
        );
        expect(await connectError(s, { user: "hba_user", database: "hba_open" })).toBeNull();
      } finally {
        writeFileSync(hba, before);
        await s.reload();
      }
    });

    test("PostgreSQL's errors: template in use 55006, duplicate 42P04, no CREATEDB 42501, template0 55000", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("CREATE DATABASE busy_tmpl");
      const user = await pgClient(s, { database: "busy_tmpl" });
      const inUse = await errorOf(admin.query("CREATE DATABASE c1 TEMPLATE busy_tmpl"));
      expect(inUse?.code).toBe("55006");
      expect(inUse?.message).toBe('source database "busy_tmpl" is being accessed by other users');
      expect(inUse?.detail).toBe("There is 1 other session using the database.");
      await user.end();

      const dup = await errorOf(admin.query("CREATE DATABASE busy_tmpl"));
      expect(dup?.code).toBe("42P04");
      expect(dup?.message).toBe('database "busy_tmpl" already exists');
      const noTemplate = await errorOf(admin.query("CREATE DATABASE c2 TEMPLATE nothere"));
      expect(noTemplate?.code).toBe("3D000");
      expect(noTemplate?.message).toBe('template database "nothere" does not exist');
      const inBlock = await errorOf(admin.query("BEGIN; CREATE DATABASE c3; COMMIT"));
      expect(inBlock?.code).toBe("0A000");
      await admin.query("ROLLBACK");

      await admin.query("CREATE ROLE plain_user LOGIN");
      const plain = await pgClient(s, { user: "plain_user" });
      const denied = await errorOf(plain.query("CREATE DATABASE c4"));
      expect(denied?.code).toBe("42501");
      expect(denied?.message).toBe("permission denied to create database");
      const notOwner = await errorOf(plain.query("DROP DATABASE busy_tmpl"));
      expect(notOwner?.code).toBe("42501");
      expect(notOwner?.message).toBe("must be owner of database busy_tmpl");

      const t0 = await connectError(s, { database: "template0" });
      expect(t0?.code).toBe("55000");
      expect(t0?.message).toBe('database "template0" is not currently accepting connections');
      const current = await errorOf(admin.query("DROP DATABASE postgres"));
      expect(current?.code).toBe("55006");
      expect(current?.message).toBe("cannot drop the currently open database");
      await admin.query("DROP DATABASE busy_tmpl");
    });

    test("a syntax error in CREATE, ALTER or DROP DATABASE or ALTER SYSTEM points where PostgreSQL's does", async () => {
      // psql shows the error's position as a caret; the lines are PostgreSQL 15's.
      const statements = [
        "drop database if exists;",
        "  create database é with owner = ;  ",
        "/* c */ create database x with bogus 1",
        "drop database x with (force, bogus",
        "drop database x (",
        "alter system set work_mem 1;",
        // ALTER DATABASE … SET's tail runs on the database's engine.
        "alter database postgres set search_path = 'a', ",
        "alter database postgres set work_mem to to",
      ];
      const err: string[] = [];
      for (const sql of statements) err.push((await psql(server(), ["-c", sql])).err);
      expect(err.join("").split("\n")).toEqual([
        'ERROR:  syntax error at or near ";"',
        "LINE 1: drop database if exists;",
        "                               ^",
        'ERROR:  syntax error at or near ";"',
        "LINE 1:   create database é with owner = ;  ",
        "                                         ^",
        'ERROR:  option "bogus" not recognized',
        "LINE 1: /* c */ create database x with bogus 1",
        "                                       ^",
        'ERROR:  syntax error at or near "bogus"',
        "LINE 1: drop database x with (force, bogus",
        "                                     ^",
        "ERROR:  syntax error at end of input",
        "LINE 1: drop database x (",
        "                         ^",
        'ERROR:  syntax error at or near "1"',
        "LINE 1: alter system set work_mem 1;",
        "                                  ^",
        "ERROR:  syntax error at end of input",
        "LINE 1: alter database postgres set search_path = 'a', ",
        "                                                       ^",
        'ERROR:  syntax error at or near "to"',
        "LINE 1: alter database postgres set work_mem to to",
        "                                                ^",
        "",
      ]);
    });

    test("CREATE, ALTER and DROP DATABASE check the current role (SET ROLE, SET SESSION AUTHORIZATION) and its memberships", async () => {
      // What PostgreSQL 15 answers to the same statements.
      const s = server();
      const admin = await pgClient(s);
      await admin.query("CREATE ROLE cr_nocdb");
      await admin.query("CREATE ROLE cr_cdb CREATEDB");
      await admin.query("CREATE ROLE cr_owner");
      await admin.query("CREATE ROLE cr_member LOGIN CREATEDB IN ROLE cr_owner");
      await admin.query("CREATE DATABASE cr_owned OWNER cr_owner");
      // A superuser that became an ordinary role has that role's privileges.
      await admin.query("SET SESSION AUTHORIZATION cr_nocdb");
      const denied = await errorOf(admin.query("CREATE DATABASE cr_x"));
      expect(denied?.code).toBe("42501");
      expect(denied?.message).toBe("permission denied to create database");
      const system = await errorOf(admin.query("ALTER SYSTEM SET work_mem = '5MB'"));
      expect(system?.code).toBe("42501");
      await admin.query("RESET SESSION AUTHORIZATION");
      // The new database's owner is the current role.
      await admin.query("SET ROLE cr_cdb");
      await admin.query("CREATE DATABASE cr_y");
      await admin.query("RESET ROLE");
      const owner = async (db: string) =>
        (await admin.query(
          "SELECT pg_get_userbyid(datdba) AS o FROM pg_database WHERE datname = $1",
          [db],
        )).rows[0]?.o;
      expect(await owner("cr_y")).toBe("cr_cdb");
      // A member of the owning role may do what the owner may.
      const m = await pgClient(s, { user: "cr_member" });
      await m.query("ALTER DATABASE cr_owned SET work_mem = '5MB'");
      // A superuser-only parameter is the superuser's to set, even for the owner.
      const suset = await errorOf(
        m.query("ALTER DATABASE cr_owned SET session_replication_role = replica"),
      );
      expect(suset?.code).toBe("42501");
      expect(suset?.message).toBe('permission denied to set parameter "session_replication_role"');
      await m.query("ALTER DATABASE cr_owned OWNER TO current_user");
      expect(await owner("cr_owned")).toBe("cr_member");
      await m.query("ALTER DATABASE cr_owned OWNER TO cr_owner");
      await m.query("ALTER DATABASE cr_owned RENAME TO cr_owned2");
      await m.query("DROP DATABASE cr_owned2");
      expect(await owner("cr_owned2")).toBeUndefined();
      await m.end();
      await admin.query("DROP DATABASE cr_y");
      await admin.end();
    });

    test("a session that defaults to read only holds up none of the cluster's own writes", async () => {
      // pgts copies roles and the database list into every database's
      // engine, runs ALTER DATABASE … SET there and drops an ended session's
      // temporary schemas, each as its own work on a backend that still
      // carries the settings of the session that ran there last.
      const s = server();
      const from = s.log.length;
      const admin = await pgClient(s);
      await admin.query("CREATE DATABASE ro_a");
      await admin.query("CREATE ROLE ro_user LOGIN");
      await admin.query("ALTER ROLE ro_user SET default_transaction_read_only = on");
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
        (await a2.query("SELECT rolname FROM pg_roles WHERE rolname ~ '^ro_role' ORDER BY 1"))
          .rows.map((r) => r.rolname),
      ).toEqual(["ro_role", "ro_role2"]);
      expect(
        (await a2.query("SELECT datname FROM pg_database WHERE datname ~ '^ro_' ORDER BY 1"))
          .rows.map((r) => r.datname),
      ).toEqual(["ro_a", "ro_b", "ro_c"]);
      // ALTER DATABASE … SET, sent from the database whose backend carries a's settings.
      await a2.query("ALTER DATABASE ro_a SET work_mem = '5MB'");
      // The session's own default is still its own.
      expect((await a.query("SHOW transaction_read_only")).rows[0].transaction_read_only)
        .toBe("on");
      // A read-only role's session that made a temporary table in a READ
      // WRITE block: its temporary schemas go when it ends.
      const ro = await pgClient(s, { user: "ro_user", database: "ro_a" });
      await ro.query("BEGIN READ WRITE; CREATE TEMP TABLE t (x int); COMMIT");
      const made = (await ro.query(
        "SELECT count(*)::int AS n FROM pg_namespace WHERE nspname LIKE 'pg%temp%'",
      )).rows[0].n;
      expect(made).toBe(2);
      await ro.end();
      const temps = async () =>
        (await a2.query(
          "SELECT count(*)::int AS n FROM pg_namespace WHERE nspname LIKE 'pg%temp%'",
        )).rows[0].n;
      for (let i = 0; i < 50 && await temps() > 0; i++) await Bun.sleep(100);
      expect(await temps()).toBe(0);
      expect(s.log.slice(from)).not.toContain("could not");
      for (const c of [a, a2, admin]) await c.end();
    });

    test("createdb and dropdb work, psql connects to template1, ALTER DATABASE renames, sets and changes owner", async () => {
      const s = server();
      const env = { PGHOST: s.socketDir, PGPORT: String(s.port), PGUSER: "postgres" };
      const run = async (argv: string[]) => {
        const p = Bun.spawn(argv, {
          env: { ...process.env, ...env },
          stderr: "pipe",
          stdout: "pipe",
        });
        const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
        return { code, err };
      };
      expect(await run([`${PG_BIN}/createdb`, "made_by_createdb"])).toEqual({ code: 0, err: "" });
      const t1 = await psql(s, ["-d", "template1", "-c", "select current_database()"]);
      expect(t1.out.trim()).toBe("template1");
      const made = await psql(s, ["-d", "made_by_createdb", "-c", "select current_database()"]);
      expect(made.out.trim()).toBe("made_by_createdb");
      // A new database has no comment; its template's is not copied (PostgreSQL keys them by oid).
      const described = await psql(s, [
        "-d",
        "made_by_createdb",
        "-c",
        "select shobj_description(oid, 'pg_database') is null from pg_database" +
        " where datname = current_database()",
      ]);
      expect(described.out.trim()).toBe("t");

      const admin = await pgClient(s);
      await admin.query("ALTER DATABASE made_by_createdb RENAME TO renamed");
      expect((await connectError(s, { database: "made_by_createdb" }))?.code).toBe("3D000");
      await admin.query("ALTER DATABASE renamed SET work_mem = '7MB'");
      // FROM CURRENT stores the session's value, not pgts's own work's
      // search_path (pg_catalog, pg_temp) or another session's.
      await admin.query("SET search_path = app_schema, public");
      await admin.query("ALTER DATABASE renamed SET search_path FROM CURRENT");
      await admin.query("ALTER DATABASE renamed SET statement_timeout FROM CURRENT");
      const c = await pgClient(s, { database: "renamed" });
      expect(
        (await c.query(
          "SELECT current_database() AS db, current_setting('work_mem') AS wm," +
            " current_setting('search_path') AS sp, current_setting('statement_timeout') AS st",
        )).rows[0],
      )
        .toEqual({ db: "renamed", wm: "7MB", sp: "app_schema, public", st: "0" });
      const renaming = await errorOf(admin.query("ALTER DATABASE renamed RENAME TO other"));
      expect(renaming?.code).toBe("55006");
      await c.end();
      await admin.query("CREATE ROLE db_owner");
      await admin.query("ALTER DATABASE renamed OWNER TO db_owner");
      const owner = await admin.query(
        "SELECT pg_get_userbyid(datdba) AS o FROM pg_database WHERE datname = 'renamed'",
      );
      expect(owner.rows[0].o).toBe("db_owner");

      expect(await run([`${PG_BIN}/dropdb`, "renamed"])).toEqual({ code: 0, err: "" });
      expect((await connectError(s, { database: "renamed" }))?.code).toBe("3D000");

      // Prisma's shadow database: a quoted mixed-case name, created, used, dropped.
      const shadow = '"prisma_migrate_shadow_db_Ab12"';
      await admin.query(`CREATE DATABASE ${shadow}`);
      const sh = await pgClient(s, { database: "prisma_migrate_shadow_db_Ab12" });
      await sh.query("CREATE TABLE _prisma_migrations (id text PRIMARY KEY)");
      await sh.end();
      await admin.query(`DROP DATABASE IF EXISTS ${shadow}`);
      const dropped = await admin.query(
        "SELECT count(*)::int AS n FROM pg_database WHERE datname LIKE 'prisma%'",
      );
      expect(dropped.rows[0].n).toBe(0);
    });
  });
}

test("a restart leaves every database's pg_database rows as they were, and shows a rename made before it", async () => {
  const s = await startSqlServer({ perTest: true });
  const admin = await pgClient(s);
  await admin.query("CREATE DATABASE kept");
  await admin.query("CREATE DATABASE before_rename");
  await admin.end();
  // Each row with the version of it that the engine holds (xmin, ctid): a row
  // written again at the start would show another.
  const rows = async (database: string) => {
    const c = await pgClient(s, { database });
    try {
      return (await c.query(
        "SELECT oid::int, datname, datistemplate, datallowconn, xmin::text, ctid::text" +
          " FROM pg_database ORDER BY datname",
      )).rows;
    } finally {
      await c.end();
    }
  };
  const before = { postgres: await rows("postgres"), kept: await rows("kept") };
  expect(before.postgres.map((r) => r.datname)).toEqual([
    "before_rename",
    "kept",
    "postgres",
    "template0",
    "template1",
  ]);

  expect((await s.stop()).code).toBe(0);
  await s.start();
  expect({ postgres: await rows("postgres"), kept: await rows("kept") }).toEqual(before);

  // A change to the list is still shown in every engine at its next start.
  const again = await pgClient(s);
  await again.query("ALTER DATABASE before_rename RENAME TO after_rename");
  await again.end();
  expect((await s.stop()).code).toBe(0);
  await s.start();
  for (const database of ["postgres", "kept", "after_rename"]) {
    expect((await rows(database)).map((r) => r.datname)).toEqual([
      "after_rename",
      "kept",
      "postgres",
      "template0",
      "template1",
    ]);
  }
});
