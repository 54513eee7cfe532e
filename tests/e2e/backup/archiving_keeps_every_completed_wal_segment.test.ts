/**
 * WAL archiving (archive_mode, archive_command, the archiver child): every
 * completed segment reaches the archive, identical, in order and none
 * skipped, while pgbench writes and segments are switched under it; a
 * failing archive_command is retried (three attempts, then again when a new
 * segment is ready) and the segment is archived once it succeeds; `pgts
 * status` shows pg_stat_archiver's counters; a shutdown leaves nothing
 * unarchived. Under `--adapter subprocess`, where the archiver is a process
 * that can be killed from outside, the archiver killed is restarted without
 * a crash cycle.
 */

import { afterAll, expect, test } from "bun:test";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import type pg from "pg";
import { join } from "node:path";
import {
  type Adapter,
  PG_BIN,
  pgtsCli,
  type PgtsServer,
  startPgts,
  usePgtsServers,
  waitFor,
} from "../../helpers/pgts.ts";

usePgtsServers({ timeoutMs: 90_000 });

const scratch = mkdtempSync(join(tmpdir(), "pgts-e2e-archive-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A segment name's position: timeline, then log and segment number (16 MB segments: 256 a log). */
function segmentNumber(name: string): number {
  return parseInt(name.slice(8, 16), 16) * 256 + parseInt(name.slice(16, 24), 16);
}

/**
 * A server whose archive_command fails until `allow` exists, after its
 * first segment failed three times; the archiver's pid from the WARNING.
 */
async function failingArchiver(
  dir: string,
  adapter: Adapter | undefined,
): Promise<{ server: PgtsServer; c: pg.Client; first: string; archiverPid: number }> {
  const archive = join(dir, "archive");
  const allow = join(dir, "allow");
  const server = await startPgts({
    ...(adapter === undefined ? {} : { adapter }),
    settings: {
      archive_mode: "on",
      archive_command: `test -f ${allow} && cp %p ${archive}/%f`,
    },
  });
  const wal = join(server.dataDir, "pglite", "pg_wal");
  const c = await server.client();
  expect((await c.query("SHOW wal_level")).rows[0].wal_level).toBe("replica");

  // The command fails (no allow file): three attempts, then it waits.
  await c.query("CREATE TABLE t (id int)");
  const first = (await c.query("SELECT pg_walfile_name(pg_switch_wal()) AS f")).rows[0].f as string;
  // Three attempts a second apart, from an archiver that may be a process
  // of its own still starting: ~3 s on an idle machine; CI's load once
  // took longer than the 15 s default, with no attempt logged yet.
  const failed = await server.waitForLog(
    new RegExp(
      `\\[(\\d+)\\] WARNING: {2}archiving write-ahead log file "${first}" failed too many times, will try again later`,
    ),
    { timeoutMs: 45_000 },
  );
  expect(server.log).toMatch(/LOG: {2}archive command failed with exit code 1/);
  expect(server.log).toContain(
    `DETAIL:  The failed archive command was: test -f ${allow} && cp pg_wal/${first} ${archive}/${first}`,
  );
  const status = await pgtsCli(["status", "-D", server.dataDir]);
  expect(status.out).toContain(`last_failed_wal: ${first}`);
  expect(status.out).toContain("archived_count: 0");
  expect(Number(/failed_count: (\d+)/.exec(status.out)?.[1])).toBeGreaterThanOrEqual(3);
  expect(existsSync(join(wal, "archive_status", `${first}.ready`))).toBe(true);
  return { server, c, first, archiverPid: Number(failed[1]) };
}

test("--adapter subprocess: the archiver killed is restarted, with no crash cycle", async () => {
  const dir = join(scratch, "killed");
  mkdirSync(dir);
  const { server, c, archiverPid: pid } = await failingArchiver(dir, "subprocess");
  process.kill(pid, "SIGKILL");
  await server.waitForLog(
    new RegExp(`LOG: {2}archiver process \\(PID ${pid}\\) was terminated by signal 9: Killed`),
  );
  // The client's session lives on.
  expect((await c.query("SELECT count(*)::int AS n FROM t")).rows[0].n).toBe(0);
  expect(server.log).not.toMatch(/terminating any other active server processes/);
  await c.end();
});

test("every completed WAL segment is archived under pgbench; a failing archive_command is retried until it succeeds", async () => {
  const archive = join(scratch, "archive");
  const allow = join(scratch, "allow");
  const { server, c, first } = await failingArchiver(scratch, undefined);
  const wal = join(server.dataDir, "pglite", "pg_wal");
  // The command succeeds from now on; pgbench writes while segments are
  // switched every half second, and each new .ready wakes the archiver.
  mkdirSync(archive);
  writeFileSync(allow, "");
  const env = {
    ...process.env,
    PGHOST: server.host,
    PGPORT: String(server.port),
    PGUSER: "postgres",
  };
  const init = Bun.spawnSync([`${PG_BIN}/pgbench`, "-i", "-q", "postgres"], { env });
  expect(init.exitCode).toBe(0);
  // 5 s in CI; the 20 s run is PGTS_ARCHIVE_BENCH_SECONDS=20.
  const seconds = process.env.PGTS_ARCHIVE_BENCH_SECONDS ?? "5";
  const bench = Bun.spawn([`${PG_BIN}/pgbench`, "-n", "-c", "4", "-T", seconds, "postgres"], {
    env,
    stdout: "pipe",
    stderr: "pipe",
  });
  let switching = true;
  const switcher = (async () => {
    const s = await server.client();
    while (switching) {
      await s.query("SELECT pg_switch_wal()");
      await Bun.sleep(500);
    }
    await s.end();
  })();
  expect(await bench.exited).toBe(0);
  switching = false;
  await switcher;
  expect(await new Response(bench.stdout).text()).toMatch(/number of failed transactions: 0/);
  const last = (await c.query("SELECT pg_walfile_name(pg_switch_wal()) AS f")).rows[0].f as string;

  // Every segment from the first marked .ready to the last completed one
  // is in the archive, and nothing is left to archive.
  await waitFor("the archive to catch up", () => {
    const ready = readdirSync(join(wal, "archive_status")).filter((n) => n.endsWith(".ready"));
    return ready.length === 0 && existsSync(join(archive, last)) ? true : undefined;
  }, { timeoutMs: 60_000 });
  const archived = readdirSync(archive).sort();
  const expected: string[] = [];
  for (let n = segmentNumber(first); n <= segmentNumber(last); n++) {
    expected.push(
      first.slice(0, 8) + Math.floor(n / 256).toString(16).toUpperCase().padStart(8, "0") +
        (n % 256).toString(16).toUpperCase().padStart(8, "0"),
    );
  }
  expect(expected.length).toBeGreaterThanOrEqual(5);
  expect(archived).toEqual(expected);
  // Each is the segment PGlite wrote (those not yet recycled are compared).
  for (const name of archived) {
    if (!existsSync(join(wal, name))) continue;
    expect(readFileSync(join(archive, name)).equals(readFileSync(join(wal, name)))).toBe(true);
  }
  const status = await pgtsCli(["status", "-D", server.dataDir]);
  expect(status.out).toContain(`last_archived_wal: ${last}`);
  expect(Number(/archived_count: (\d+)/.exec(status.out)?.[1])).toBe(expected.length);

  // A shutdown archives what the engine's shutdown checkpoint completed
  // before the server exits (PostgreSQL's PM_SHUTDOWN_2): nothing is left .ready.
  await c.end();
  expect((await server.stop("fast")).code).toBe(0);
  expect(readdirSync(join(wal, "archive_status")).filter((n) => n.endsWith(".ready"))).toEqual([]);
  for (const name of readdirSync(join(wal, "archive_status"))) {
    expect(existsSync(join(archive, name.replace(/\.done$/, "")))).toBe(true);
  }
});
