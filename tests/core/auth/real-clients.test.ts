import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import pg from "pg";
import { buildScramSecret, md5PasswordHash, parseHba } from "../../../src/core/auth/mod.ts";
import { type AuthServer, startAuthServer } from "./auth-server.ts";

const PSQL = "/usr/lib/postgresql/15/bin/psql";

const HBA = `
host all scram_user      127.0.0.1/32 scram-sha-256
host all md5_user        127.0.0.1/32 md5
host all md5_scram_user  127.0.0.1/32 md5
host all pw_user         127.0.0.1/32 password
host all nopass          127.0.0.1/32 scram-sha-256
host all rejected        127.0.0.1/32 reject
`;

let server: AuthServer;

beforeAll(async () => {
  server = startAuthServer({
    hba: parseHba(HBA, { fileName: "test_hba.conf" }),
    secrets: {
      scram_user: await buildScramSecret("scram-pass"),
      md5_user: md5PasswordHash("md5-pass", "md5_user"),
      md5_scram_user: await buildScramSecret("both-pass"),
      pw_user: await buildScramSecret("plain-pass"),
    },
  });
});

afterAll(() => server?.stop());

async function withPg<T>(user: string, password: string, fn: (c: pg.Client) => Promise<T>) {
  const client = new pg.Client({
    host: "127.0.0.1",
    port: server.port,
    user,
    password,
    database: "app",
  });
  try {
    await client.connect();
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

async function pgError(user: string, password: string) {
  try {
    await withPg(user, password, () => Promise.resolve());
  } catch (e) {
    const err = e as { code?: string; message: string; severity?: string };
    return { code: err.code, message: err.message, severity: err.severity };
  }
  throw new Error("expected the connection to fail");
}

async function psql(user: string, password: string) {
  const proc = Bun.spawn([
    PSQL,
    "-X",
    "-w",
    "-At",
    "-h",
    "127.0.0.1",
    "-p",
    String(server.port),
    "-U",
    user,
    "-d",
    "app",
    "-c",
    "select 'hello', 42",
  ], {
    env: { PATH: process.env.PATH ?? "", PGPASSWORD: password, PGCONNECT_TIMEOUT: "10" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill(), 15000);
  try {
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    return { stdout: stdout.trim(), stderr, code };
  } finally {
    clearTimeout(timer);
    proc.kill();
  }
}

describe("node-postgres authenticates against pgts's auth modules", () => {
  for (
    const [method, user, password] of [
      ["scram-sha-256", "scram_user", "scram-pass"],
      ["md5", "md5_user", "md5-pass"],
      ["md5 with a SCRAM secret (switches to SCRAM)", "md5_scram_user", "both-pass"],
      ["password", "pw_user", "plain-pass"],
    ] as const
  ) {
    test(`${method}: connects and reads the fixed row`, async () => {
      const rows = await withPg(user, password, async (c) => (await c.query("select 1")).rows);
      expect(rows).toEqual([{ greeting: "hello", n: 42 }]);
    });
  }

  test("a wrong password is FATAL 28P01 with PostgreSQL's message", async () => {
    for (const user of ["scram_user", "md5_user", "pw_user"]) {
      expect(await pgError(user, "wrong")).toEqual({
        code: "28P01",
        severity: "FATAL",
        message: `password authentication failed for user "${user}"`,
      });
    }
  });

  test("a role without a password fails the same way", async () => {
    expect(await pgError("nopass", "anything")).toEqual({
      code: "28P01",
      severity: "FATAL",
      message: 'password authentication failed for user "nopass"',
    });
  });

  test("no pg_hba.conf line is FATAL 28000, and reject says so", async () => {
    expect(await pgError("stranger", "x")).toEqual({
      code: "28000",
      severity: "FATAL",
      message:
        'no pg_hba.conf entry for host "127.0.0.1", user "stranger", database "app", no encryption',
    });
    expect(await pgError("rejected", "x")).toEqual({
      code: "28000",
      severity: "FATAL",
      message:
        'pg_hba.conf rejects connection for host "127.0.0.1", user "rejected", database "app", no encryption',
    });
  });
});

describe("psql 15 authenticates against pgts's auth modules", () => {
  for (
    const [method, user, password] of [
      ["scram-sha-256", "scram_user", "scram-pass"],
      ["md5", "md5_user", "md5-pass"],
      ["password", "pw_user", "plain-pass"],
    ] as const
  ) {
    test(`${method}: runs a query after SSL is declined`, async () => {
      const declinedBefore = server.encryptionRequestsDeclined;
      const r = await psql(user, password);
      expect(server.encryptionRequestsDeclined).toBeGreaterThan(declinedBefore);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("hello|42");
      expect(r.code).toBe(0);
    });
  }

  test("a wrong password shows FATAL 28P01's message", async () => {
    const r = await psql("scram_user", "wrong");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('FATAL:  password authentication failed for user "scram_user"');
  });

  test("no pg_hba.conf line shows the 28000 message", async () => {
    const r = await psql("stranger", "x");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'FATAL:  no pg_hba.conf entry for host "127.0.0.1", user "stranger", database "app", no encryption',
    );
  });
});
