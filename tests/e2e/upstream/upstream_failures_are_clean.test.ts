/**
 * An upstream that fails never takes pgts down: down at connect, the
 * client gets 08001 with the upstream's reason; an upstream backend that
 * is terminated ends only its session (57P01, or 08006 when it dies
 * without a word); a stopped upstream ends every session cleanly, new
 * sessions fail with 08001 until it is back, then succeed. Also: each way
 * the upstream may ask pgts for its password, and who the session is.
 */

import { afterAll, expect, test } from "bun:test";
import pg from "pg";
import {
  freePort,
  PG_BIN,
  PgtsFront,
  run,
  UPSTREAM_PASSWORD,
  UpstreamPostgres,
  useUpstreamServers,
  waitFor,
} from "../../helpers/upstream.ts";

useUpstreamServers({ timeoutMs: 120_000 });

const opened: pg.Client[] = [];
afterAll(async () => {
  await Promise.all(opened.map((c) => c.end().catch(() => {})));
});

type PgErr = Error & { code?: string; severity?: string };

async function client(
  front: PgtsFront,
  as: { user?: string; password?: string; database?: string } = {},
): Promise<pg.Client & { errors: PgErr[] }> {
  const c = new pg.Client({
    host: front.host,
    port: front.port,
    user: as.user ?? "postgres",
    database: as.database ?? "postgres",
    ...(as.password !== undefined ? { password: as.password } : {}),
    connectionTimeoutMillis: 10_000,
  }) as pg.Client & { errors: PgErr[] };
  c.errors = [];
  c.on("error", (e) => c.errors.push(e));
  opened.push(c);
  await c.connect();
  return c;
}

async function connectError(
  front: PgtsFront,
  as: { user?: string; password?: string; database?: string } = {},
): Promise<PgErr | null> {
  try {
    const c = await client(front, as);
    await c.end();
    return null;
  } catch (e) {
    return e as PgErr;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test("an upstream that is down at connect: 08001 with the upstream's reason; pgts stays up", async () => {
  const port = await freePort();
  const front = await PgtsFront.start(`postgres://postgres:x@127.0.0.1:${port}/postgres`);
  const e = await connectError(front);
  expect(e?.code).toBe("08001");
  expect(e?.message).toContain("could not connect to the upstream server");
  expect(e?.message).toContain("ECONNREFUSED");
  const r = await run([`${PG_BIN}/psql`, "-X", "-c", "select 1"], { env: front.env() });
  expect(r.code).toBe(2);
  expect(r.err).toContain("could not connect to the upstream server");
  expect(alive(front.pid)).toBe(true);
  await front.cleanup();
});

test("a terminated or killed upstream backend ends only its session; a stopped upstream ends all, and pgts serves again once it is back", async () => {
  const upstream = await UpstreamPostgres.start();
  const front = await PgtsFront.start(upstream.url());

  // pg_terminate_backend: the upstream's own FATAL 57P01 reaches the client.
  const a = await client(front);
  const b = await client(front);
  const aPid = (await a.query("select pg_backend_pid() as pid")).rows[0].pid;
  const aSleep = a.query("select pg_sleep(30)").then(() => null, (e: PgErr) => e);
  await waitFor(
    "A's query to run",
    async () =>
      (await upstream.psql(`select state from pg_stat_activity where pid = ${aPid}`)).out.trim() ===
        "active",
  );
  await upstream.psql(`select pg_terminate_backend(${aPid})`);
  const aErr = await aSleep;
  expect(aErr?.code).toBe("57P01");
  expect(aErr?.message).toBe("terminating connection due to administrator command");
  expect((await b.query("select 'b goes on' as s")).rows[0].s).toBe("b goes on");

  // SIGKILL of the upstream backend: no word from it, 08006 from pgts.
  // (The upstream then restarts after the crash: its other sessions end too.)
  const c = await client(front);
  const cPid = (await c.query("select pg_backend_pid() as pid")).rows[0].pid;
  const cSleep = c.query("select pg_sleep(30)").then(() => null, (e: PgErr) => e);
  await Bun.sleep(200);
  process.kill(cPid, "SIGKILL");
  const cErr = await cSleep;
  expect(cErr?.code).toBe("08006");
  expect(cErr?.message).toContain("upstream server closed the connection");
  await waitFor("the upstream to recover", async () => (await connectError(front)) === null, {
    timeoutMs: 30_000,
  });

  // A fast stop: every session gets 57P01, new ones 08001 until the restart.
  const d = await client(front);
  const e = await client(front);
  const dSleep = d.query("select pg_sleep(30)").then(() => null, (x: PgErr) => x);
  await Bun.sleep(200);
  await upstream.stop("fast");
  expect((await dSleep)?.code).toBe("57P01");
  await waitFor("the idle session to be ended", () => e.errors.length > 0);
  expect(e.errors[0]?.code ?? "").toMatch(/57P01|08006/);
  const down = await connectError(front);
  expect(down?.code).toBe("08001");
  expect(down?.message).toContain("could not connect to the upstream server");
  expect(alive(front.pid)).toBe(true);

  await upstream.startServer();
  const f = await client(front);
  expect((await f.query("select 'back' as s")).rows[0].s).toBe("back");
  expect(front.log).not.toContain("backend failed");
  expect(front.log).not.toMatch(/terminated by signal|exited with exit code [^01]/);
});

test("pgts logs in upstream with md5, password and trust (SCRAM everywhere else), and wrong credentials are 08001", async () => {
  for (const auth of ["md5", "password", "trust"] as const) {
    const upstream = await UpstreamPostgres.start({ auth });
    const front = await PgtsFront.start(upstream.url());
    const c = await client(front);
    expect((await c.query("select 1 as one")).rows[0].one).toBe(1);
    await c.end();
    if (auth === "md5") {
      const wrong = await PgtsFront.start(
        upstream.url().replace(
          encodeURIComponent(UPSTREAM_PASSWORD),
          "wrong",
        ),
      );
      const err = await connectError(wrong);
      expect(err?.code).toBe("08001");
      expect(err?.message).toContain('password authentication failed for user "postgres"');
      await wrong.cleanup();
    }
    await front.cleanup();
    await upstream.cleanup();
  }
});

test("the client's role authenticates with its upstream password and logs in upstream as itself; an unknown database is 3D000", async () => {
  const upstream = await UpstreamPostgres.start();
  await upstream.psql("create role alice login password 'alice pw'");
  const hba = [
    "local all all trust",
    "host all postgres 127.0.0.1/32 trust",
    "host all all 127.0.0.1/32 scram-sha-256",
    "",
  ].join("\n");
  const [front, pooled, asUrl] = await Promise.all([
    PgtsFront.start(upstream.url(), { hba }),
    PgtsFront.start(upstream.url(), {
      hba,
      settings: { pool_mode: "transaction", default_pool_size: "2" },
    }),
    PgtsFront.start(upstream.url(), { hba, settings: { upstream_login: "url" } }),
  ]);
  const bad = await connectError(front, { user: "alice", password: "nope" });
  expect(bad?.code).toBe("28P01");
  // SCRAM pass-through: the keys alice proved to pgts log her in upstream,
  // in session and transaction mode; no password of hers is stored.
  for (const f of [front, pooled]) {
    const alice = await client(f, { user: "alice", password: "alice pw" });
    const who = await alice.query("select current_user as cu, session_user as su");
    expect(who.rows[0]).toEqual({ cu: "alice", su: "alice" });
    // The URL's user is no longer a ceiling she can go back to.
    expect(await alice.query("reset role").then(() => null, (e) => e)).toBeNull();
    expect((await alice.query("select session_user as su")).rows[0].su).toBe("alice");
    expect((await alice.query("set role postgres").catch((e) => e)).code).toBe("42501");
    await alice.end();
  }
  // upstream_login = url: the URL's user, with role set to alice.
  const viaUrl = await client(asUrl, { user: "alice", password: "alice pw" });
  const who = await viaUrl.query("select current_user as cu, session_user as su");
  expect(who.rows[0]).toEqual({ cu: "alice", su: "postgres" });
  await viaUrl.end();
  const nobody = await connectError(front, { user: "nobody", password: "x" });
  expect(nobody?.code).toBe("28P01");
  const nodb = await connectError(front, { database: "no_such_db" });
  expect(nodb?.code).toBe("3D000");
  expect(nodb?.message).toBe('database "no_such_db" does not exist');
});
