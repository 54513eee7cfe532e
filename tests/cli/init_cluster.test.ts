/**
 * What `pgts init` makes, seen by real clients: the superuser's password
 * from --pwfile (stored as a SCRAM secret, never as text), the roles
 * PostgreSQL's initdb makes and no others, -U naming the one superuser, a
 * wrong password logged once.
 */

import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectError, psql, startSqlServer, useSqlServers } from "../helpers/pgts-sql.ts";

useSqlServers({ timeoutMs: 180_000 });

const scratch = mkdtempSync(join(tmpdir(), "pgts-init-cluster-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const PASSWORD = "s3cret-from-pwfile";

function pwfile(): string {
  const path = join(scratch, "pw");
  writeFileSync(path, `${PASSWORD}\n`);
  return path;
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    const st = statSync(path);
    return st.isDirectory() ? filesUnder(path) : st.isFile() ? [path] : [];
  });
}

const failedFor = (user: string) => `FATAL:  password authentication failed for user "${user}"`;

test("init --auth scram-sha-256 --pwfile: psql logs in as postgres with PGPASSWORD, a wrong password is 28P01 logged once", async () => {
  const s = await startSqlServer({
    initArgs: ["--auth", "scram-sha-256", "--pwfile", pwfile()],
    perTest: true,
  });
  const tcp = ["-h", "127.0.0.1", "-c", "select current_user"];
  const ok = await psql(s, tcp, { env: { PGPASSWORD: PASSWORD } });
  expect(ok.err).toBe("");
  expect(ok.out.trim()).toBe("postgres");
  const secret = await psql(s, [
    "-c",
    "select rolpassword from pg_authid where rolname = 'postgres'",
  ], {
    env: { PGPASSWORD: PASSWORD },
  });
  expect(secret.out.trim()).toMatch(/^SCRAM-SHA-256\$4096:/);

  const from = s.log.length;
  const bad = await psql(s, tcp, { env: { PGPASSWORD: "wrong" } });
  expect(bad.code).not.toBe(0);
  expect(bad.err).toContain(failedFor("postgres"));
  expect((await connectError(s, { password: "wrong" }))?.code).toBe("28P01");
  // Two failures (psql's, then node-postgres's): two FATALs, each with its detail.
  await s.waitForLog(new RegExp(`${failedFor("postgres")}[^]*${failedFor("postgres")}[^]*DETAIL`), {
    from,
  });
  await Bun.sleep(300);
  const log = s.log.slice(from);
  expect(log.split(failedFor("postgres")).length - 1).toBe(2);
  expect(log).toContain(`DETAIL:  Password does not match for user "postgres".`);
  expect(log).toMatch(
    /Connection matched file ".*pg_hba\.conf" line \d+: "host +all +all +127\.0\.0\.1\/32 +scram-sha-256"/,
  );

  // The password itself is nowhere: not in the server's log, not in any file of the cluster.
  expect(s.log).not.toContain(PASSWORD);
  for (const file of filesUnder(s.dataDir)) {
    expect(readFileSync(file).includes(Buffer.from(PASSWORD))).toBe(false);
  }
});

test("init -A md5 --pwfile: psql logs in with the password (stored as SCRAM, which md5 lines accept)", async () => {
  const s = await startSqlServer({ initArgs: ["-A", "md5", "--pwfile", pwfile()], perTest: true });
  const ok = await psql(s, ["-c", "select 'in'"], { env: { PGPASSWORD: PASSWORD } });
  expect(ok.err).toBe("");
  expect(ok.out.trim()).toBe("in");
  const bad = await psql(s, ["-c", "select 1"], { env: { PGPASSWORD: "wrong" } });
  expect(bad.err).toContain(failedFor("postgres"));
});

test("a new cluster has the roles initdb makes: one superuser and the pg_* roles", async () => {
  const s = await startSqlServer({ perTest: true });
  const roles = await psql(s, ["-c", "select rolname from pg_roles where rolname !~ '^pg_'"]);
  expect(roles.out.trim()).toBe("postgres");
  const predefined = await psql(s, [
    "-c",
    "select count(*) > 10 from pg_roles where rolname ~ '^pg_'",
  ]);
  expect(predefined.out.trim()).toBe("t");
  const du = await psql(s, ["-c", "\\du"]);
  expect(du.err).toBe("");
  expect(du.out).toMatch(/^postgres\|Superuser/m);
  expect(du.out).not.toContain("unknown");
});

test("init -U alice: alice is the bootstrap superuser and the only one; postgres does not exist", async () => {
  const s = await startSqlServer({
    initArgs: ["-U", "alice", "-A", "scram-sha-256", "--pwfile", pwfile()],
    perTest: true,
  });
  const as = { PGUSER: "alice", PGPASSWORD: PASSWORD };
  const roles = await psql(s, [
    "-c",
    "select oid, rolname, rolsuper from pg_roles where rolname !~ '^pg_'",
  ], {
    env: as,
  });
  expect(roles.err).toBe("");
  expect(roles.out.trim()).toBe("10|alice|t");
  const owner = await psql(s, [
    "-c",
    "select pg_get_userbyid(datdba) from pg_database where datname = 'postgres'",
  ], {
    env: as,
  });
  expect(owner.out.trim()).toBe("alice");
  const postgres = await psql(s, ["-c", "select 1"], { env: { PGPASSWORD: PASSWORD } });
  expect(postgres.err).toContain(failedFor("postgres"));
  expect(s.log).toContain(`DETAIL:  Role "postgres" does not exist.`);
});
