/**
 * Client authentication through a real pgts server made by
 * `pgts init --auth scram-sha-256 --pwfile F`: the bootstrap superuser's
 * password from the file, then pg_hba.conf edited and `pgts reload`ed to
 * one line per method (trust, reject, password, md5, scram-sha-256).
 * Wrong passwords get 28P01, no matching line and reject lines 28000, a
 * role or database that does not exist 28000 / 3D000 — PostgreSQL's texts.
 */

import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  connectError,
  pgClient,
  type PgtsServer,
  psql,
  startSqlServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";

useSqlServers();

const SUPER_PW = "s3cret 'pw' ü";

let shared: Promise<PgtsServer> | null = null;
/** The scram server, made once for the file. */
function server(): Promise<PgtsServer> {
  shared ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgts-pwfile-"));
    try {
      const pwfile = join(dir, "pw");
      writeFileSync(pwfile, `${SUPER_PW}\n`);
      return await startSqlServer({
        initArgs: ["-U", "postgres", "--auth", "scram-sha-256", "--pwfile", pwfile],
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();
  return shared;
}

const wrongPassword = (user: string) => `password authentication failed for user "${user}"`;

test("pgts init --auth scram-sha-256 --pwfile: the superuser logs in with the file's password only", async () => {
  const s = await server();
  const ok = await pgClient(s, { password: SUPER_PW });
  expect((await ok.query("select current_user as u")).rows).toEqual([{ u: "postgres" }]);
  expect(
    (await ok.query(
      "select rolpassword like 'SCRAM-SHA-256$%' as scram from pg_authid where rolname = 'postgres'",
    )).rows,
  ).toEqual([{ scram: true }]);
  await ok.end();

  const bad = await connectError(s, { password: "not it" });
  expect(bad?.code).toBe("28P01");
  expect(bad?.message).toBe(wrongPassword("postgres"));
  // The client has its error before the server's log line reaches the test's pipe.
  await s.waitForLog(new RegExp(`FATAL: {2}${wrongPassword("postgres")}`));

  // psql over the Unix socket: the local line asks for the password too.
  const noPw = await psql(s, ["-w", "-c", "select 1"]);
  expect(noPw.code).not.toBe(0);
  expect(noPw.err).toContain("fe_sendauth: no password supplied");
  const withPw = await psql(s, ["-c", "select 'in' as v"], { env: { PGPASSWORD: SUPER_PW } });
  expect(withPw.err).toBe("");
  expect(withPw.out.trim()).toBe("in");

  // A role that does not exist fails exactly like a wrong password.
  const ghost = await connectError(s, { user: "ghost", password: "x" });
  expect(ghost?.code).toBe("28P01");
  expect(ghost?.message).toBe(wrongPassword("ghost"));
});

test("each pg_hba.conf method after pgts reload: trust, reject, password, md5, scram-sha-256", async () => {
  const s = await server();
  const setup = await psql(s, [
    "-c",
    [
      "create role trusted login",
      "create role refused login password 'refused-pw'",
      "create role plain login password 'plain-pw'",
      "set password_encryption = 'md5'",
      "create role md5user login password 'md5-pw'",
      "reset password_encryption",
      "create role scramuser login password 'scram-pw'",
      "create role nologin password 'nl-pw'",
    ].join("; "),
  ], { env: { PGPASSWORD: SUPER_PW } });
  // The engine (PostgreSQL 18) warns that MD5 passwords are deprecated.
  expect(setup.err).not.toContain("ERROR");
  expect(setup.code).toBe(0);

  writeFileSync(
    join(s.dataDir, "pg_hba.conf"),
    [
      "local   all   all                      scram-sha-256",
      "host    all   trusted     127.0.0.1/32 trust",
      "host    all   refused     127.0.0.1/32 reject",
      "host    all   plain       127.0.0.1/32 password",
      "host    all   md5user     127.0.0.1/32 md5",
      "host    all   scramuser   127.0.0.1/32 scram-sha-256",
      "host    all   postgres    127.0.0.1/32 scram-sha-256",
      "host    all   nologin     127.0.0.1/32 trust",
      "host    all   ghost       127.0.0.1/32 trust",
      "",
    ].join("\n"),
  );
  const from = s.log.length;
  const reload = await s.reload();
  expect(reload.code).toBe(0);
  await s.waitForLog(/received SIGHUP, reloading configuration files/, { from });

  // trust: no password asked.
  const trusted = await pgClient(s, { user: "trusted" });
  expect((await trusted.query("select current_user as u")).rows).toEqual([{ u: "trusted" }]);
  await trusted.end();

  // reject
  const refused = await connectError(s, { user: "refused", password: "refused-pw" });
  expect(refused?.code).toBe("28000");
  expect(refused?.message).toBe(
    'pg_hba.conf rejects connection for host "127.0.0.1", user "refused", database "postgres", no encryption',
  );

  // password (clear text), md5, scram-sha-256: right and wrong passwords.
  for (
    const [user, pw] of [["plain", "plain-pw"], ["md5user", "md5-pw"], ["scramuser", "scram-pw"]]
  ) {
    const c = await pgClient(s, { user: user!, password: pw! });
    expect((await c.query("select current_user as u")).rows).toEqual([{ u: user }]);
    await c.end();
    const bad = await connectError(s, { user: user!, password: `${pw}-wrong` });
    expect(bad?.code).toBe("28P01");
    expect(bad?.message).toBe(wrongPassword(user!));
  }

  // No line for this user.
  const unlisted = await connectError(s, { user: "trusted_elsewhere", password: "x" });
  expect(unlisted?.code).toBe("28000");
  expect(unlisted?.message).toBe(
    'no pg_hba.conf entry for host "127.0.0.1", user "trusted_elsewhere", database "postgres", no encryption',
  );

  // trust for a role that does not exist, or may not log in; a missing database.
  const ghost = await connectError(s, { user: "ghost" });
  expect(ghost?.code).toBe("28000");
  expect(ghost?.message).toBe('role "ghost" does not exist');
  const nologin = await connectError(s, { user: "nologin" });
  expect(nologin?.code).toBe("28000");
  expect(nologin?.message).toBe('role "nologin" is not permitted to log in');
  const nodb = await connectError(s, { user: "trusted", database: "no_such_db" });
  expect(nodb?.code).toBe("3D000");
  expect(nodb?.message).toBe('database "no_such_db" does not exist');

  // A password changed with ALTER ROLE counts for the next connection.
  const admin = await pgClient(s, { password: SUPER_PW });
  await admin.query("alter role scramuser password 'new-pw'");
  await admin.end();
  expect((await connectError(s, { user: "scramuser", password: "scram-pw" }))?.code).toBe("28P01");
  expect(await connectError(s, { user: "scramuser", password: "new-pw" })).toBeNull();
});

test("a password past its VALID UNTIL fails as a wrong one (28P01), logged as expired; 'infinity' and a later date log in", async () => {
  // scramuser's scram-sha-256 line is the previous test's pg_hba.conf.
  const s = await server();
  const su = await pgClient(s, { password: SUPER_PW });
  try {
    await su.query("alter role scramuser password 'exp-pw' valid until '2001-01-01'");
    const expired = await connectError(s, { user: "scramuser", password: "exp-pw" });
    expect([expired?.code, expired?.message]).toEqual(["28P01", wrongPassword("scramuser")]);
    await s.waitForLog(/DETAIL: {2}User "scramuser" has an expired password\./);
    for (const until of ["infinity", "2999-01-01"]) {
      await su.query(`alter role scramuser valid until '${until}'`);
      const c = await pgClient(s, { user: "scramuser", password: "exp-pw" });
      expect((await c.query("select current_user as u")).rows).toEqual([{ u: "scramuser" }]);
      await c.end();
    }
    await su.query("alter role scramuser valid until '2002-02-02 02:02'");
    const again = await connectError(s, { user: "scramuser", password: "exp-pw" });
    expect(again?.code).toBe("28P01");
  } finally {
    await su.query("alter role scramuser valid until 'infinity'");
    await su.end();
  }
});
