/**
 * auth_file (pgbouncer's userlist) in front of a real PostgreSQL 15 whose
 * engine URL names a role that may not read pg_authid: pgts checks the
 * client's password against the file's secret and logs in upstream as the
 * client's own role, with the SCRAM keys the client proved (a SCRAM secret
 * in the file) or with the file's password, in session and transaction
 * mode; against an md5 upstream, with the file's md5 hash. A role the file
 * does not list has no secret, as before.
 */

import { beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { PgtsFront, UpstreamPostgres, useUpstreamServers } from "../../helpers/upstream.ts";

useUpstreamServers({ timeoutMs: 90_000 });

let upstream: UpstreamPostgres;
const fronts: Record<string, PgtsFront> = {};

beforeAll(async () => {
  upstream = await UpstreamPostgres.start();
  const setup = await upstream.psql(
    "create role pgts_app login password 'app pw'; " +
      "create role alice login password 'alice pw'; " +
      "create role bob login password 'bob pw'; " +
      "create role carol login password 'carol pw'",
  );
  if (setup.code !== 0) throw new Error(setup.err);
  const secret = await upstream.psql("select rolpassword from pg_authid where rolname = 'alice'");
  const url = `postgres://pgts_app:app%20pw@127.0.0.1:${upstream.port}/postgres`;
  const hba = "host all all 127.0.0.1/32 scram-sha-256\n";
  const settings = { auth_file: "userlist.txt" };
  [fronts["session"], fronts["transaction"]] = await Promise.all([
    PgtsFront.start(url, { hba, settings }),
    PgtsFront.start(url, {
      hba,
      settings: { ...settings, pool_mode: "transaction", default_pool_size: "2" },
    }),
  ]);
  // Read at every login: written after the start.
  for (const front of Object.values(fronts)) {
    writeFileSync(
      join(front.dataDir, "userlist.txt"),
      `; the roles pgts logs in as\n"alice" "${secret.out.trim()}"\n"bob" "bob pw"\n`,
    );
  }
}, 90_000);

async function login(front: PgtsFront, user: string, password: string) {
  const c = new pg.Client({
    host: front.host,
    port: front.port,
    user,
    password,
    database: "postgres",
  });
  c.on("error", () => {});
  try {
    await c.connect();
  } catch (e) {
    return { error: e as { code: string; message: string } };
  }
  try {
    const r = await c.query("select session_user as s, current_user as c");
    return { roles: `${r.rows[0].s}/${r.rows[0].c}` };
  } finally {
    await c.end();
  }
}

for (const mode of ["session", "transaction"]) {
  test(`${mode} mode: clients in auth_file log in upstream as their own roles`, async () => {
    const front = fronts[mode]!;
    // A SCRAM secret copied from the upstream: the client's proof logs it in.
    expect(await login(front, "alice", "alice pw")).toEqual({ roles: "alice/alice" });
    // A password in the file: pgts logs in with it (SCRAM upstream).
    expect(await login(front, "bob", "bob pw")).toEqual({ roles: "bob/bob" });
    const wrong = await login(front, "alice", "bob pw");
    expect(wrong.error?.code).toBe("28P01");
    expect(wrong.error?.message).toBe('password authentication failed for user "alice"');
    // Not in the file, and pgts_app may not read pg_authid: no secret to check.
    expect((await login(front, "carol", "carol pw")).error?.code).toBe("28P01");
    // No password in pgts's log.
    expect(front.log).not.toContain("bob pw");
    expect(front.log).not.toContain("alice pw");
  });
}

test("an md5 hash in auth_file answers an md5 upstream's challenge as the role", async () => {
  const md5 = await UpstreamPostgres.start({ auth: "md5" });
  const setup = await md5.psql(
    "create role pgts_app login password 'app pw'; create role dave login password 'dave pw'",
  );
  if (setup.code !== 0) throw new Error(setup.err);
  const hash = (await md5.psql("select rolpassword from pg_authid where rolname = 'dave'")).out
    .trim();
  expect(hash).toMatch(/^md5[0-9a-f]{32}$/);
  const front = await PgtsFront.start(
    `postgres://pgts_app:app%20pw@127.0.0.1:${md5.port}/postgres`,
    { hba: "host all all 127.0.0.1/32 md5\n", settings: { auth_file: "userlist.txt" } },
  );
  writeFileSync(join(front.dataDir, "userlist.txt"), `"dave" "${hash}"\n`);
  expect(await login(front, "dave", "dave pw")).toEqual({ roles: "dave/dave" });
  expect((await login(front, "dave", "not it")).error?.code).toBe("28P01");
});
