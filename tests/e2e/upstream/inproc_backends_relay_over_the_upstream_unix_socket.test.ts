/**
 * The configuration scripts/bench/upstream.ts measures as the cheapest
 * relay: `pgts start --adapter inproc --engine postgres://...?host=/dir`,
 * every backend a task in the postmaster's process, each with its own
 * session on PostgreSQL's Unix socket. Real clients get PostgreSQL's own
 * behaviour, concurrently, with cancel and rollback on disconnect.
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
  upstream = await UpstreamPostgres.start({ auth: "scram-sha-256" });
  front = await PgtsFront.start(upstream.url({ via: "unix" }), { adapter: "inproc" });
}, 90_000);

/** Processes whose parent is `pid` (/proc; a Bun subprocess backend would be one). */
async function childrenOf(pid: number): Promise<number[]> {
  const r = await run(["pgrep", "-P", String(pid)]);
  return r.out.split("\n").filter((l) => l.trim() !== "").map(Number);
}

test("sessions are upstream sessions on its Unix socket, served in pgts's one process", async () => {
  const a = await front.client();
  const b = await front.client();
  try {
    const q = "select inet_server_addr() is null as unix, pg_backend_pid() as pid";
    const ra = (await a.query(q)).rows[0];
    const rb = (await b.query(q)).rows[0];
    expect(ra.unix).toBe(true);
    expect(rb.unix).toBe(true);
    expect(ra.pid).not.toBe(rb.pid);
    expect(await childrenOf(front.pid)).toEqual([]);
  } finally {
    await a.end();
    await b.end();
  }
});

test("pgbench -i, then select-only and TPC-B with -c 4 run with 0 failures", async () => {
  const init = await run([`${PG_BIN}/pgbench`, "-i", "-s", "1"], { env: front.env() });
  expect(init.code).toBe(0);
  for (const script of [["-S"], []]) {
    await front.pgbench(["-n", "-T", "3", "-c", "4", "-j", "2", ...script]);
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
  p.kill("SIGINT");
  const err = await new Response(p.stderr).text();
  await p.exited;
  expect(err).toContain("canceling statement due to user request");
});

test("a client that leaves mid-transaction has it rolled back: its row lock is released", async () => {
  const setup = await front.client();
  await setup.query("create table if not exists held (id int primary key, n int)");
  await setup.query("insert into held values (1, 0) on conflict do nothing");
  const a = await front.client();
  const b = await front.client();
  try {
    await a.query("begin");
    await a.query("update held set n = n + 1 where id = 1");
    let updated = false;
    const waiting = b.query("update held set n = n + 10 where id = 1").then(() => (updated = true));
    await Bun.sleep(300);
    expect(updated).toBe(false);
    // Gone without COMMIT: the upstream session rolls back and B goes on.
    (a as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await waiting;
    expect((await b.query("select n from held where id = 1")).rows[0].n).toBe(10);
  } finally {
    await b.end();
    await setup.end();
  }
});
