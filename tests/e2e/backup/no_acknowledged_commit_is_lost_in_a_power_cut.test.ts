/**
 * Durable commits (fsync, synchronous_commit): a power cut, simulated by the
 * LD_PRELOAD shim of tests/helpers/powercut.ts, loses no acknowledged commit
 * when fsync is on (the default), and loses them when it is off. The cut
 * keeps only what had been fsynced (every unsynced write is lost); the
 * server's processes are all SIGKILLed at once; a server started on what
 * the disk kept must recover every commit a client saw acknowledged.
 */

import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import {
  type Adapter,
  ENGINE_TEST_ADAPTERS,
  PG_BIN,
  type PgtsServer,
  pgtsServerAt,
  preparePgts,
  usePgtsServers,
  waitFor,
} from "../../helpers/pgts.ts";
import { PowerCut, powerCutShim } from "../../helpers/powercut.ts";

usePgtsServers({ timeoutMs: 90_000 });

const shim = powerCutShim();
const maybe = shim === null ? test.skip : test;

async function armed(
  adapter: Adapter | undefined,
  settings: Record<string, string> = {},
): Promise<{ server: PgtsServer; cut: PowerCut; after: PgtsServer }> {
  const server = await preparePgts(adapter === undefined ? {} : { adapter });
  const root = mkdtempSync(join(tmpdir(), "pgts-e2e-powercut-"));
  const after = pgtsServerAt(root, adapter === undefined ? {} : { adapter });
  const cut = new PowerCut(shim!, server.dataDir, after.dataDir);
  await server.start({ settings, env: cut.arm() });
  return { server, cut, after };
}

/**
 * The cut itself: every process of the server killed at once, and the
 * postmaster reaped. Until then it is a zombie whose PID the next start's
 * lock check sees alive (FATAL: lock file "postmaster.pid" already exists);
 * after a real power cut no process is left at all.
 */
async function powerOff(server: PgtsServer): Promise<void> {
  server.killAll();
  await server.exited;
}

/**
 * Autocommit INSERTs from `clients` connections at once (distinct ids)
 * until `n` are acknowledged, then the cut; the acknowledged ids.
 */
async function insertThenCut(server: PgtsServer, n: number, clients = 1): Promise<number[]> {
  const cs = await Promise.all(Array.from({ length: clients }, () => server.client()));
  await cs[0]!.query("CREATE TABLE acked (id int PRIMARY KEY)");
  const acked: number[] = [];
  // One more per client in flight at the cut: its fate is unknown, as in PostgreSQL.
  const inFlight = cs.map((c, i) =>
    (async () => {
      for (let k = 0; acked.length < n; k++) {
        const id = k * clients + i + 1;
        await c.query("INSERT INTO acked VALUES ($1)", [id]);
        acked.push(id);
      }
    })().catch(() => {})
  );
  await waitFor("inserts", () => (acked.length >= n ? true : undefined), { timeoutMs: 60_000 });
  const seen = [...acked];
  await powerOff(server);
  await Promise.all(inFlight);
  return seen;
}

/** How many of `ids` the server started on what the disk kept has. */
async function countAfter(after: PgtsServer, ids: readonly number[]): Promise<number> {
  await after.start();
  const exists = await after.psql("SELECT to_regclass('acked') IS NOT NULL");
  if (exists.out.trim() !== "t") return 0;
  const r = await after.psql(`SELECT count(*) FROM acked WHERE id IN (${ids.join(",")})`);
  expect(r.err).toBe("");
  return Number(r.out.trim());
}

for (const adapter of ENGINE_TEST_ADAPTERS) {
  maybe(
    `fsync on (the default), --adapter ${
      adapter ?? "default"
    }: every acknowledged commit survives a power cut`,
    async () => {
      const { server, cut, after } = await armed(adapter);
      const show = await server.psql("SHOW fsync; SHOW synchronous_commit; SHOW wal_sync_method");
      expect(show.out.trim().split("\n")).toEqual(["on", "on", "fdatasync"]);
      // pgbench's TPC-B at -c 4 to the end: all its transactions are acknowledged.
      const env = {
        ...process.env,
        PGHOST: server.host,
        PGPORT: String(server.port),
        PGUSER: "postgres",
      };
      const pgbench = (args: string[]) =>
        Bun.spawnSync([`${PG_BIN}/pgbench`, ...args, "postgres"], {
          env,
          stdout: "pipe",
          stderr: "pipe",
        });
      expect(pgbench(["-i", "-q"]).exitCode).toBe(0);
      const before = cut.fsyncs();
      const bench = pgbench(["-n", "-c", "4", "-t", "25"]);
      expect(bench.stdout.toString()).toContain(
        "number of transactions actually processed: 100/100",
      );
      // Each commit waited for its WAL's fdatasync.
      expect(cut.fsyncs() - before).toBeGreaterThanOrEqual(100);
      // A COMMIT is answered when its fdatasync returned (3 ms here), not
      // when the statement another session started right after it ends:
      // the engine's thread waits for the disk while PGlite runs that one.
      const a = await server.client();
      const b = await server.client();
      await a.query("CREATE TABLE committed_early (id int)");
      await a.query("BEGIN");
      await a.query("INSERT INTO committed_early VALUES (1)");
      const sleeping = b.query("SELECT pg_sleep(4)"); // waits for a's transaction
      await Bun.sleep(200);
      const t0 = performance.now();
      await a.query("COMMIT");
      expect(performance.now() - t0).toBeLessThan(2000);
      await sleeping;
      await a.end();
      await b.end();
      // Then node-postgres's autocommit INSERTs from 4 connections at once,
      // and the cut in their middle. Commits that arrive together share
      // an fdatasync (group commit): fewer fsyncs than commits, and still
      // every acknowledged one is on disk.
      const fsyncsBefore = cut.fsyncs();
      const acked = await insertThenCut(server, 60 + Math.floor(Math.random() * 40), 4);
      expect(cut.fsyncs() - fsyncsBefore).toBeLessThan(acked.length);
      expect(await countAfter(after, acked)).toBe(acked.length);
      const r = await after.psql(
        "SELECT (SELECT count(*) FROM pgbench_history), " +
          "(SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(delta) FROM pgbench_history), " +
          "(SELECT sum(bbalance) FROM pgbench_branches) = (SELECT sum(delta) FROM pgbench_history)",
      );
      expect(r.out.trim()).toBe("100|t|t");
    },
  );
}

maybe("fsync off: a power cut loses acknowledged inserts (what the default prevents)", async () => {
  const { server, cut, after } = await armed(undefined, { fsync: "off" });
  expect((await server.psql("SHOW fsync")).out.trim()).toBe("off");
  const acked = await insertThenCut(server, 60);
  // Nothing of the engine's was fsynced since the start (pgts's own
  // postmaster.pid is): the table and all 60 rows are gone.
  expect(cut.fsyncs()).toBeLessThan(5);
  expect(await countAfter(after, acked)).toBe(0);
});

maybe(
  "synchronous_commit = off: commits older than 3 × wal_writer_delay survive a power cut (the WAL writer)",
  async () => {
    const { server, cut, after } = await armed(undefined, { synchronous_commit: "off" });
    const c = await server.client();
    await c.query("CREATE TABLE acked (id int PRIMARY KEY)");
    const ids = Array.from({ length: 30 }, (_, i) => i + 1);
    for (const id of ids) await c.query("INSERT INTO acked VALUES ($1)", [id]);
    // Answered before their WAL was flushed; PostgreSQL's WAL writer
    // flushes it within three rounds of wal_writer_delay (200 ms).
    await Bun.sleep(1000);
    expect(cut.fsyncs()).toBeGreaterThan(0);
    await powerOff(server);
    expect(await countAfter(after, ids)).toBe(ids.length);
  },
);

maybe(
  "a failing fsync PANICs the engine, the crash cycle recovers, committed rows are kept",
  async () => {
    const { server, cut } = await armed(undefined);
    const c = await server.client();
    await c.query("CREATE TABLE kept (id int)");
    await c.query("INSERT INTO kept VALUES (1)");
    cut.failFsyncs(true);
    const err = await c.query("INSERT INTO kept VALUES (2)").then(() => null, (e: Error) => e);
    cut.failFsyncs(false);
    // Never acknowledged: the PANIC's FATAL, or (the engine's process
    // exiting first, as PostgreSQL's clients may see after a PANIC) the
    // connection lost.
    expect(err?.message ?? "").toMatch(
      /could not fdatasync file|terminating connection|lost connection to the engine process/,
    );
    await server.waitForLog(/could not fdatasync file ".*": I\/O error/);
    // The postmaster's crash cycle reopens the cluster; a new client sees row 1.
    const rows = await waitFor("the server back after the crash cycle", async () => {
      const again = new pg.Client({ host: server.host, port: server.port, user: "postgres" });
      try {
        await again.connect();
        return (await again.query("SELECT id FROM kept ORDER BY id")).rows.map((x) => x.id);
      } catch {
        return undefined;
      } finally {
        await again.end().catch(() => {});
      }
    }, { timeoutMs: 30_000 });
    expect(rows[0]).toBe(1);
  },
);
