/**
 * A full disk: the data directory on a small tmpfs, filled up by a file
 * beside it. A write that needs a new data page gets PostgreSQL's clean
 * ERROR 53100 and the server goes on serving. A write that needs a new WAL
 * segment makes the engine PANIC, as PostgreSQL's WAL writer does; that is a
 * crash, the crash cycle runs, and while the disk stays full crash recovery
 * cannot finish: clients get 57P03 and the postmaster tries again with
 * backoff. Once space returns (the file removed) the server answers again
 * by itself — same postmaster, no manual restart — with every acknowledged
 * commit there. Under the default adapter the new segment is first needed
 * by a statement's commit and space returns; under --adapter subprocess by
 * the WAL writer's flush between statements, and a fast shutdown ends the
 * retries.
 *
 * Mounting a tmpfs needs root (CAP_SYS_ADMIN), which CI has; elsewhere the
 * test is skipped and says why.
 */

import { afterEach, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, renameSync, rmSync, statfsSync } from "node:fs";
import { join } from "node:path";
import { pgClient, useSqlServers, waitFor } from "../../helpers/pgts-sql.ts";
import {
  type Adapter,
  isAlive,
  passAdapters,
  type PgtsServer,
  preparePgts,
  usePgtsServers,
  withTimeout,
} from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 120_000 });

/** Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN). */
function canMount(): boolean {
  if (process.platform !== "linux" || process.getuid?.() !== 0) return false;
  const probe = `/tmp/pgts-diskfull-probe-${process.pid}`;
  mkdirSync(probe, { recursive: true });
  const ok = spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", probe]).status === 0;
  if (ok) spawnSync("umount", [probe]);
  rmSync(probe, { recursive: true, force: true });
  return ok;
}

const MOUNTABLE = canMount();
if (!MOUNTABLE) console.warn("skipping the full-disk tests: mounting a tmpfs needs root");

/** Mounts still up (a failed test's): taken down before the servers' directories are removed. */
const mounts: string[] = [];
const unmountAll = () => {
  for (const m of mounts.splice(0)) spawnSync("umount", ["-l", m]);
};
afterEach(unmountAll);
// The servers preparePgts made: stopped and removed after each test, a failed one's too.
usePgtsServers({ timeoutMs: 120_000 });

/** A server whose data directory is on its own tmpfs of `sizeMb`; the filler's path beside it. */
async function serverOnTmpfs(adapter: Adapter | undefined, sizeMb: number) {
  const s = await preparePgts(adapter === undefined ? {} : { adapter });
  const staged = `${s.dataDir}.staged`;
  renameSync(s.dataDir, staged);
  mkdirSync(s.dataDir);
  const mount = spawnSync("mount", [
    "-t",
    "tmpfs",
    "-o",
    `size=${sizeMb}m,mode=0700`,
    "tmpfs",
    s.dataDir,
  ]);
  if (mount.status !== 0) throw new Error(`mount failed: ${mount.stderr}`);
  mounts.push(s.dataDir);
  cpSync(staged, s.dataDir, { recursive: true });
  rmSync(staged, { recursive: true });
  await s.start();
  return { s, filler: join(s.dataDir, "filler") };
}

/** Takes all but `leaveBytes` of the tmpfs with one file. */
function fillDisk(s: PgtsServer, filler: string, leaveBytes = 4096): void {
  const st = statfsSync(s.dataDir);
  const free = Number(st.bavail) * Number(st.bsize);
  const r = spawnSync("fallocate", ["-l", String(Math.max(0, free - leaveBytes)), filler]);
  if (r.status !== 0) throw new Error(`fallocate failed: ${r.stderr}`);
}

for (const adapter of passAdapters([undefined, "subprocess"] as Array<Adapter | undefined>)) {
  describe(`${adapter ?? "default"} server`, () => {
    // One ending per adapter, to keep the run short; both endings go
    // through the same postmaster code under either adapter.
    const ending = adapter === undefined ? "space returns" : "fast shutdown";
    test.skipIf(!MOUNTABLE)(
      ending === "space returns"
        ? "a full disk fails writes cleanly or crashes the engine; the server comes back by itself when space returns"
        : "a full disk crashes the engine; a fast shutdown during the retries stops the server, and a restart finds every commit",
      async () => {
        const { s, filler } = await serverOnTmpfs(adapter, 160);
        try {
          await fullDiskCycle(s, filler, ending, adapter !== undefined);
        } finally {
          s.killAll();
          await s.exited;
          unmountAll();
        }
      },
    );
  });
}

/**
 * Fills the disk under a running server; ends with space returning while the
 * server retries, or with a fast shutdown during the retries.
 */
async function fullDiskCycle(
  s: PgtsServer,
  filler: string,
  ending: "space returns" | "fast shutdown",
  pauseAfterSwitch: boolean,
): Promise<void> {
  const postmaster = s.pid;
  const c = await pgClient(s);
  await c.query("create table kept (i int)");
  await c.query("create table big (i int, pad text)");
  let acknowledged = 0;
  await c.query("insert into kept values (0)");
  acknowledged++;
  await c.query("checkpoint");

  // A new data page: ERROR 53100 with PostgreSQL's hint; the server serves on.
  fillDisk(s, filler);
  const extend = await c.query(
    "insert into big select g, repeat('x', 200) from generate_series(1, 100000) g",
  ).catch((e) => e);
  expect(extend).toMatchObject({ code: "53100" });
  expect(extend.message).toContain("No space left on device");
  const reader = await pgClient(s);
  expect((await reader.query("select count(*)::int as n from kept")).rows[0].n).toBe(
    acknowledged,
  );
  await reader.end();

  // A new WAL segment: the engine PANICs; the client hears of it at once.
  // With a pause after each switch, the segment is first needed by the WAL
  // writer's flush between statements (walflush.ts), whose PANIC once left
  // the WAL locks taken: the next insert spun on them for ever. Without
  // one, by the next insert's commit.
  let lost: (Error & { code?: string }) | null = null;
  for (let i = 0; i < 40 && lost === null; i++) {
    try {
      await withTimeout(c.query("insert into kept values ($1)", [i + 1]), 20_000, "insert");
      acknowledged++;
      await withTimeout(c.query("select pg_switch_wal()"), 20_000, "pg_switch_wal()");
      if (pauseAfterSwitch) await Bun.sleep(1000);
    } catch (e) {
      lost = e as Error & { code?: string };
    }
  }
  expect(lost).not.toBeNull();
  expect(lost!.message).not.toContain("timed out");
  await waitFor("the crash to be logged", () => /PANIC|engine lost its backend/.test(s.log));
  // Recovery cannot finish on a full disk: 57P03, and retries with backoff.
  await waitFor(
    "a retry to be scheduled",
    () => s.log.includes("engine could not start after a crash; retrying in"),
    { timeoutMs: 60_000 },
  );
  const refused = await pgClient(s).then(() => null, (e) => e);
  expect(refused).toMatchObject({ code: "57P03" });

  if (ending === "fast shutdown") {
    // A fast shutdown stops the retries and the server at once.
    const t0 = Date.now();
    const stopped = await s.stop("fast");
    expect(stopped.code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(isAlive(postmaster)).toBe(false);
    // Started again once space is back: nothing acknowledged is lost.
    rmSync(filler);
    await s.start();
    const c2 = await pgClient(s);
    expect((await c2.query("select count(*)::int as n from kept")).rows[0].n).toBe(acknowledged);
    await c2.end();
    return;
  }

  // Space returns: served again by the same postmaster, nothing lost.
  rmSync(filler);
  const t0 = Date.now();
  const again = await waitFor("a client to be served again", async () => {
    try {
      return await pgClient(s);
    } catch {
      return undefined;
    }
  }, { timeoutMs: 60_000 });
  const waited = Date.now() - t0;
  expect(waited).toBeLessThan(40_000);
  expect(s.pid).toBe(postmaster);
  expect(isAlive(postmaster)).toBe(true);
  expect((await again.query("select count(*)::int as n from kept")).rows[0].n).toBe(
    acknowledged,
  );
  await again.query("insert into kept values (-1)");
  expect((await again.query("select count(*)::int as n from kept")).rows[0].n).toBe(
    acknowledged + 1,
  );
  await again.end();
}
