/**
 * A login's startup options (node-postgres `options`, psql's PGOPTIONS) are
 * checked as PostgreSQL checks them at login: good ones apply to the
 * session, and a bad one refuses the connection itself with PostgreSQL's
 * FATAL and SQLSTATE (an unknown parameter 42704, a bad value 22023, one
 * that cannot be set at connection start 55P02, a superuser's by another
 * role 42501), instead of a connection whose first query fails. The server
 * goes on serving.
 */

import { describe, expect, test } from "bun:test";
import pg from "pg";
import { pgClient, pgConfig, psql, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";

useSqlServers({ timeoutMs: 90_000 });

type ConnectFailure = Error & { code?: string; severity?: string; hint?: string };

describe("startup options", () => {
  const server = sharedServer();

  /** Connects with `options` as `user`; the error connect() failed with, or null (then closes). */
  async function connectWith(options: string, user = "postgres"): Promise<ConnectFailure | null> {
    const c = new pg.Client({ ...pgConfig(server(), { user }), options });
    c.on("error", () => {});
    try {
      await c.connect();
    } catch (e) {
      return e as ConnectFailure;
    }
    await c.end().catch(() => {});
    return null;
  }

  test("good options apply to the session", async () => {
    const c = new pg.Client({
      ...pgConfig(server()),
      options:
        "-c default_transaction_isolation=serializable -c work_mem=64MB --search_path=pg_catalog,public",
    });
    await c.connect();
    try {
      const r = await c.query(
        "select current_setting('default_transaction_isolation') as iso, " +
          "current_setting('work_mem') as wm, current_setting('search_path') as sp",
      );
      expect(r.rows).toEqual([{ iso: "serializable", wm: "64MB", sp: "pg_catalog,public" }]);
    } finally {
      await c.end();
    }
  });

  test("each bad kind fails connect() with PostgreSQL's FATAL and SQLSTATE", async () => {
    const cases: Array<[string, string, string]> = [
      ["-c nonsense_param=0", "42704", 'unrecognized configuration parameter "nonsense_param"'],
      [
        "-c statement_timeout=abc",
        "22023",
        'invalid value for parameter "statement_timeout": "abc"',
      ],
      [
        "-c work_mem=1",
        "22023",
        '1 kB is outside the valid range for parameter "work_mem" (64 .. 2097151)',
      ],
      [
        "-c default_transaction_isolation=sometimes",
        "22023",
        'invalid value for parameter "default_transaction_isolation": "sometimes"',
      ],
      [
        "-c shared_buffers=1MB",
        "55P02",
        'parameter "shared_buffers" cannot be changed without restarting the server',
      ],
      [
        "-c checkpoint_timeout=1min",
        "55P02",
        'parameter "checkpoint_timeout" cannot be changed now',
      ],
      ["-c server_version_num=1", "55P02", 'parameter "server_version_num" cannot be changed'],
    ];
    for (const [options, code, message] of cases) {
      const e = await connectWith(options);
      expect({ options, code: e?.code, severity: e?.severity, message: e?.message }).toEqual({
        options,
        code,
        severity: "FATAL",
        message,
      });
    }
    // A parameter pgts refuses: 0A000, with the reason.
    const refused = await connectWith("-c exit_on_error=on");
    expect(refused?.code).toBe("0A000");
    expect(refused?.hint).toContain("Every session shares the engine's one backend");
    // The server goes on serving.
    const c = await pgClient(server());
    expect((await c.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
  });

  test("a superuser's parameter is refused to another role with 42501 and allowed to a superuser", async () => {
    const admin = await pgClient(server());
    await admin.query("create role startup_plain login");
    const e = await connectWith("-c log_statement=all", "startup_plain");
    expect({ code: e?.code, message: e?.message }).toEqual({
      code: "42501",
      message: 'permission denied to set parameter "log_statement"',
    });
    expect(await connectWith("-c log_statement=all")).toBeNull();
    // A user parameter is anyone's.
    expect(await connectWith("-c work_mem=8MB", "startup_plain")).toBeNull();
  });

  test("psql's PGOPTIONS: a good one applies, a bad one ends psql with the FATAL", async () => {
    const good = await psql(server(), ["-c", "show default_transaction_isolation"], {
      env: { PGOPTIONS: "-c default_transaction_isolation=repeatable\\ read" },
    });
    expect(good).toMatchObject({ code: 0, out: "repeatable read\n" });
    const bad = await psql(server(), ["-c", "select 1"], {
      env: { PGOPTIONS: "-c nonsense_param=0" },
    });
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('FATAL:  unrecognized configuration parameter "nonsense_param"');
    expect(await psql(server(), ["-c", "select 2"])).toMatchObject({ code: 0, out: "2\n" });
  });

  test("a replication connection is refused with a FATAL that says so, not served as a session", async () => {
    // Served as an ordinary session, IDENTIFY_SYSTEM (or postgres.js
    // subscribe()'s CREATE_REPLICATION_SLOT) read as a syntax error.
    const logical = await psql(server(), [
      "-d",
      "dbname=postgres replication=database",
      "-c",
      "IDENTIFY_SYSTEM",
    ]);
    expect(logical.code).toBe(2);
    expect(logical.err).toContain("FATAL:  logical replication connections are not supported");
    expect(await psql(server(), ["-c", "select 3"])).toMatchObject({ code: 0, out: "3\n" });
  });
});
