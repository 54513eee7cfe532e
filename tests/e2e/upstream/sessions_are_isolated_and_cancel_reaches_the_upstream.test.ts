/**
 * What only a session of its own gives: temp tables and session advisory
 * locks belong to one client (and go when it leaves), and a CancelRequest
 * sent to pgts with the key the client got reaches the upstream query.
 */

import { beforeAll, expect, test } from "bun:test";
import {
  PG_BIN,
  PgtsFront,
  run,
  UpstreamPostgres,
  useUpstreamServers,
  waitFor,
} from "../../helpers/upstream.ts";

useUpstreamServers({ timeoutMs: 90_000 });

let upstream: UpstreamPostgres;
let front: PgtsFront;

beforeAll(async () => {
  upstream = await UpstreamPostgres.start();
  front = await PgtsFront.start(upstream.url());
}, 90_000);

test("a temp table is seen only by the session that made it, and goes with it", async () => {
  const a = await front.client();
  const b = await front.client();
  try {
    await a.query("create temp table scratch (n int); insert into scratch values (1)");
    expect((await a.query("select count(*)::int as n from scratch")).rows[0].n).toBe(1);
    const e = await b.query("select * from scratch").catch((x) => x);
    expect(e.code).toBe("42P01");
    // B may have its own table of the same name.
    await b.query("create temp table scratch (n int)");
    expect((await b.query("select count(*)::int as n from scratch")).rows[0].n).toBe(0);
  } finally {
    await a.end();
    await b.end();
  }
  const c = await front.client();
  try {
    expect((await c.query("select * from scratch").catch((x) => x)).code).toBe("42P01");
  } finally {
    await c.end();
  }
});

test("a session advisory lock is held by its session only, and released when it leaves", async () => {
  const a = await front.client();
  const b = await front.client();
  try {
    expect((await a.query("select pg_try_advisory_lock(42) as ok")).rows[0].ok).toBe(true);
    expect((await b.query("select pg_try_advisory_lock(42) as ok")).rows[0].ok).toBe(false);
    // Re-entrant for its holder, as PostgreSQL's are.
    expect((await a.query("select pg_try_advisory_lock(42) as ok")).rows[0].ok).toBe(true);
    // B waits for it, and gets it once A has gone.
    let got = false;
    const waiting = b.query("select pg_advisory_lock(42)").then(() => (got = true));
    await Bun.sleep(300);
    expect(got).toBe(false);
    await a.end();
    await waiting;
    expect(got).toBe(true);
    const held = await b.query(
      "select count(*)::int as n from pg_locks where locktype = 'advisory' and objid = 42 and pid = pg_backend_pid()",
    );
    expect(held.rows[0].n).toBe(1);
  } finally {
    await b.end();
  }
});

test("psql's cancel (SIGINT) stops the upstream pg_sleep with 57014", async () => {
  const p = Bun.spawn([`${PG_BIN}/psql`, "-X", "-c", "select pg_sleep(30)"], {
    env: { ...process.env, ...front.env() },
    stdout: "pipe",
    stderr: "pipe",
  });
  await waitFor("pg_sleep to run upstream", async () => {
    const r = await upstream.psql(
      "select count(*) from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'",
    );
    return r.out.trim() === "1";
  });
  const started = Date.now();
  p.kill("SIGINT");
  const err = await new Response(p.stderr).text();
  await p.exited;
  expect(err).toContain("canceling statement due to user request");
  expect(Date.now() - started).toBeLessThan(10_000);
});

function cancelPacket(pid: number, key: number): Uint8Array {
  const packet = new Uint8Array(16);
  const v = new DataView(packet.buffer);
  v.setInt32(0, 16);
  v.setInt32(4, 80877102);
  v.setInt32(8, pid);
  v.setInt32(12, key);
  return packet;
}

async function sendCancel(pid: number, key: number): Promise<void> {
  const sock = await Bun.connect({ hostname: front.host, port: front.port, socket: { data() {} } });
  sock.write(cancelPacket(pid, key));
  sock.end();
}

test("a CancelRequest with node-postgres's key stops the upstream query; the connection goes on", async () => {
  const c = await front.client();
  try {
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    const settled = c.query("select pg_sleep(30)").then(() => null, (e) => e);
    await waitFor("pg_sleep to run upstream", async () => {
      const r = await upstream.psql(
        "select count(*) from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'",
      );
      return r.out.trim() === "1";
    });
    await sendCancel(processID, secretKey);
    const e = await settled;
    expect(e?.code).toBe("57014");
    expect((await c.query("select 1 as one")).rows[0].one).toBe(1);
    const active = await upstream.psql(
      "select count(*) from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'",
    );
    expect(active.out.trim()).toBe("0");
  } finally {
    await c.end();
  }
});

test("a cancel with a wrong key cancels nothing", async () => {
  const c = await front.client();
  try {
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    const running = c.query("select pg_sleep(1.5) as slept");
    await Bun.sleep(300);
    await sendCancel(processID, secretKey ^ 1);
    const r = await running;
    expect(r.rows[0].slept).toBe("");
  } finally {
    await c.end();
  }
});

test("pgbench -i then select-only with the extended protocol works through the relay", async () => {
  const init = await run([`${PG_BIN}/pgbench`, "-i", "-s", "1"], { env: front.env() });
  expect(init.code).toBe(0);
  for (const mode of ["extended", "prepared"]) {
    const r = await run([`${PG_BIN}/pgbench`, "-S", "-M", mode, "-T", "2", "-c", "2"], {
      env: front.env(),
    });
    expect(r.out).toMatch(/number of failed transactions: 0 \(0\.000%\)/);
  }
});
