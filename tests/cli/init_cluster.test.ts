/**
 * What `pgts init` makes, seen by real clients: the superuser's password
 * from --pwfile (stored as a SCRAM secret, never as text), the roles
 * PostgreSQL's initdb makes and no others, -U naming the one superuser, a
 * wrong password logged once; and the cluster image it copies (made by the
 * first init on a machine, reused by the next ones, and the start of a
 * memory:// engine).
 */

import { afterAll, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  connectError,
  PgtsServer,
  psql,
  startSqlServer,
  useSqlServers,
  waitFor,
} from "../helpers/pgts-sql.ts";
import { BUN, ROOT } from "../helpers/pgts.ts";

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

/** Runs `bun mod.ts args` with extra environment; collects its output. */
function pgtsWithEnv(args: string[], env: Record<string, string>) {
  return new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const child = spawn(BUN, [join(ROOT, "mod.ts"), ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.on("data", (d) => (err += d));
    child.on("exit", (code) => resolve({ code, out, err }));
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

// ---- the cluster image --------------------------------------------------------

const cache = join(scratch, "cache");

test("the first init makes the cluster image and says so; the next init copies it", async () => {
  const env = { PGTS_CACHE_DIR: cache };
  const first = await pgtsWithEnv(["init", "-D", join(scratch, "first")], env);
  expect(first.code).toBe(0);
  const made = /creating cluster image (\S+) \(once per PGlite version, about 10 s\) \.\.\. ok/
    .exec(
      first.out,
    );
  expect(made).not.toBeNull();
  const image = made![1]!;
  expect(image.startsWith(`${cache}/pglite-`)).toBe(true);
  expect(existsSync(image)).toBe(true);
  expect(first.out).toContain(`copying cluster image ${image} ... ok`);

  // The next init copies it; the copy is a cluster that starts and serves psql, as -U's bob.
  const server = new PgtsServer(mkdtempSync(join(scratch, "second-")), "bun", undefined);
  try {
    const second = await pgtsWithEnv(["init", "-D", server.dataDir, "-U", "bob"], env);
    expect(second.code).toBe(0);
    expect(second.out).not.toContain("creating cluster image");
    expect(second.out).toContain(`copying cluster image ${image} ... ok`);
    expect(readdirSync(cache)).toEqual([image.slice(cache.length + 1)]);
    await server.start();
    const r = await psql(server, ["-c", "select current_user"], { env: { PGUSER: "bob" } });
    expect(r.err).toBe("");
    expect(r.out.trim()).toBe("bob");
    // Each copy has a system identifier of its own, as initdb gives each cluster.
    const sysid = (dir: string) =>
      readFileSync(join(dir, "pglite", "global", "pg_control")).readBigUInt64LE(0);
    expect(sysid(server.dataDir)).not.toBe(sysid(join(scratch, "first")));
    const id = await psql(server, ["-c", "select system_identifier from pg_control_system()"], {
      env: { PGUSER: "bob" },
    });
    expect(id.out.trim()).toBe(String(sysid(server.dataDir)));
  } finally {
    await server.cleanup();
  }
});

test("a memory:// engine starts from the cluster image and answers a query", async () => {
  // The image the previous test made (or, run alone, made now by this first use).
  const port = 0;
  const child = spawn(
    BUN,
    [
      "-e",
      `
      import { httpHandler } from ${JSON.stringify(join(ROOT, "mod.ts"))};
      const h = httpHandler({ engine: { dataDir: "memory://", placement: "inline" },
        hba: "host all all 0.0.0.0/0 trust\\n" });
      const s = Bun.serve({ port: ${port}, hostname: "127.0.0.1", fetch: (r) => h.fetch(r) });
      console.log("port", s.port);
    `,
    ],
    {
      cwd: ROOT,
      env: { ...process.env, PGTS_CACHE_DIR: cache },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  try {
    let out = "";
    child.stdout!.on("data", (d) => (out += d));
    const url = await waitFor("the HTTP server's port", () => {
      const m = /port (\d+)/.exec(out);
      return m ? `http://127.0.0.1:${m[1]}/sql` : undefined;
    });
    const res = await fetch(url, {
      method: "POST",
      headers: { "Neon-Connection-String": "postgres://postgres@127.0.0.1/postgres" },
      body: JSON.stringify({ query: "select rolname from pg_roles where oid = 10", params: [] }),
    });
    const body = await res.text();
    expect({ status: res.status, body }).toMatchObject({ status: 200 });
    expect(JSON.parse(body).rows).toEqual([{ rolname: "postgres" }]);
    expect(readdirSync(cache).length).toBe(1);
  } finally {
    child.kill("SIGKILL");
  }
});
