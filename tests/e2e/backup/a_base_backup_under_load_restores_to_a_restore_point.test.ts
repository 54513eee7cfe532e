/**
 * Base backups and recovery from the archive: `pgts basebackup -F tar -z`
 * taken while a client inserts, unpacked with tar, plus the WAL archive
 * (archive_timeout takes the last segment there), brought back with
 * recovery.signal, restore_command and recovery_target_name, has exactly
 * the rows committed before the restore point and none after it. With
 * PostgreSQL's default recovery_target_action (pause) the server stops at
 * the target and says why; started again with promote it opens on a new
 * timeline. Another database, a PGlite cluster with a WAL of its own, is
 * archived too (its files named `base_<oid>_…` in the archive) and
 * recovered to the same moment: a client inserting there all along finds
 * exactly the rows committed there before the restore point. A backup a
 * session started and left is ended with the session.
 */

import { afterAll, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import pg from "pg";
import { join } from "node:path";
import { pgtsCli, pgtsServerAt, startPgts, usePgtsServers, waitFor } from "../../helpers/pgts.ts";

// Four server starts, three with an engine per database, and every
// database's recovery: minutes on a loaded machine.
usePgtsServers({ timeoutMs: 300_000 });

const scratch = mkdtempSync(join(tmpdir(), "pgts-e2e-basebackup-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

test("a base backup taken under load plus the archive restores to a named restore point with exactly the rows committed before it", async () => {
  const archive = join(scratch, "archive");
  mkdirSync(archive);
  const server = await startPgts({
    // archive_timeout, not pg_switch_wal(), takes the restore point to the archive.
    settings: { archive_mode: "on", archive_command: `cp %p ${archive}/%f`, archive_timeout: 5 },
  });
  const admin = await server.client();
  // A backup left started by a session that ended is ended with it (every
  // session shares the engine's one backend, which would refuse the next).
  const quitter = await server.client();
  await quitter.query("SELECT pg_backup_start('abandoned')");
  await quitter.end();
  await waitFor("the abandoned backup ended", async () => {
    const c = await server.client();
    try {
      await c.query("SELECT pg_backup_start('probe')");
      return true;
    } catch (e) {
      expect((e as { code?: string }).code).toBe("55000");
      return false;
    } finally {
      await c.end();
    }
  });
  await admin.query("CREATE TABLE t (id serial PRIMARY KEY, payload text)");
  // Another database: a PGlite cluster of its own (base/<oid>), backed up on its own connection.
  await admin.query("CREATE DATABASE other");
  const other = new pg.Client({
    host: server.host,
    port: server.port,
    user: "postgres",
    database: "other",
  });
  await other.connect();
  await other.query("CREATE TABLE o AS SELECT 'in other' AS v");
  await other.query("CREATE TABLE ot (id serial PRIMARY KEY)");
  // Its directory, base/<oid>, by the OID "postgres"'s pg_database gives it.
  const otherOid = (await admin.query(
    "SELECT oid FROM pg_database WHERE datname = 'other'",
  )).rows[0].oid as number;

  // A client inserts into the other database all along too, but for the
  // moment of the restore point (made in "postgres"): those committed
  // before it are what the other database recovers to.
  const otherAcked: number[] = [];
  let otherWriting = true;
  let otherPaused = false;
  let otherIdle = false;
  const otherWrites = (async () => {
    while (otherWriting) {
      if (otherPaused) {
        otherIdle = true;
        await Bun.sleep(5);
        continue;
      }
      otherIdle = false;
      const r = await other.query("INSERT INTO ot DEFAULT VALUES RETURNING id");
      otherAcked.push(r.rows[0].id as number);
    }
  })();

  // One client inserts all along; acknowledged ids are what it saw committed.
  const writer = await server.client();
  const acked: number[] = [];
  let writing = true;
  const writes = (async () => {
    while (writing) {
      const r = await writer.query(
        "INSERT INTO t (payload) VALUES (repeat('x', 200)) RETURNING id",
      );
      acked.push(r.rows[0].id as number);
    }
  })();
  await waitFor("50 acknowledged inserts", () => acked.length >= 50, { timeoutMs: 20_000 });
  const beforeBackup = [...acked];

  const backupRoot = join(scratch, "backup");
  const tarDir = join(scratch, "tar");
  const backup = await pgtsCli([
    "basebackup",
    "-D",
    tarDir,
    "-F",
    "tar",
    "-z",
    "-h",
    server.host,
    "-p",
    String(server.port),
    "-P",
    "-c",
    "fast",
  ]);
  expect(backup.err).toMatch(/\d+\/\d+ kB \(100%\), 3\/3 databases\n$/);
  expect(backup.code).toBe(0);
  expect(readdirSync(tarDir)).toEqual(["base.tar.gz"]);
  const listing = execFileSync("tar", ["-tzf", join(tarDir, "base.tar.gz")], { encoding: "utf8" });
  expect(listing).toContain("pglite/backup_label");
  expect(listing).toContain("postgresql.conf");
  expect(listing).toMatch(/pglite\/pg_wal\/[0-9A-F]{24}/);
  expect(listing).not.toContain("postmaster.pid");
  mkdirSync(join(backupRoot, "d"), { recursive: true, mode: 0o700 });
  execFileSync("tar", ["-xzf", join(tarDir, "base.tar.gz"), "-C", join(backupRoot, "d")]);
  const during = acked.length - beforeBackup.length;

  // The restore point: one statement holds the engine, so no commit falls
  // between what it sees and where the point is in the WAL. The other
  // database's writer waits meanwhile: what it committed before is before
  // the point's time, what it commits after is after it.
  otherPaused = true;
  await waitFor("the other database's writer to pause", () => otherIdle, { timeoutMs: 20_000 });
  const otherAtPoint = [...otherAcked];
  await Bun.sleep(20); // the clock moves on between the two databases' commits
  const point = (await admin.query(
    "SELECT pg_create_restore_point('before_cleanup') AS lsn, array_agg(id ORDER BY id) AS ids FROM t",
  )).rows[0];
  await Bun.sleep(20);
  otherPaused = false;
  const atPoint = point.ids as number[];
  await waitFor("inserts after the restore point", () => acked.length >= atPoint.length + 20, {
    timeoutMs: 20_000,
  });
  await waitFor(
    "inserts in the other database after the restore point",
    () => otherAcked.length >= otherAtPoint.length + 20,
    { timeoutMs: 20_000 },
  );
  writing = false;
  otherWriting = false;
  await writes;
  await otherWrites;
  await admin.query("DELETE FROM t WHERE id % 2 = 0");
  await other.query("DELETE FROM ot WHERE id % 2 = 0");
  await other.end();
  const segment = (await admin.query("SELECT pg_walfile_name($1) AS f", [point.lsn])).rows[0].f;
  await waitFor(`${segment} archived`, () => existsSync(join(archive, segment)), {
    timeoutMs: 20_000,
  });
  await server.stop();
  // The other database's WAL is in the archive, under names of its own.
  expect(readdirSync(archive).some((n) => n.startsWith(`base_${otherOid}_`))).toBe(true);

  // Recovery from the archive to the restore point, then a new timeline.
  writeFileSync(join(backupRoot, "d", "recovery.signal"), "");
  const restored = pgtsServerAt(backupRoot);
  const recovery = {
    restore_command: `cp ${archive}/%f %p`,
    recovery_target_name: "before_cleanup",
  };
  // PostgreSQL's default action, pause, stops the engine at the target (no
  // hot standby): the server says so and exits.
  const paused = await restored.start({ settings: recovery }).then(() => "", (e) => String(e));
  expect(paused).toContain('LOG:  recovery stopping at restore point "before_cleanup"');
  expect(paused).toContain("archive recovery did not complete: the engine stopped during recovery");
  expect(paused).toContain("HINT:  Postgres's lines above say why.");
  expect(paused).toContain("aborting startup due to startup process failure");
  // Started again with promote, it ends recovery there.
  // Every database recovers before the server is ready: minutes under load.
  await restored.start({
    settings: { ...recovery, recovery_target_action: "promote" },
    readyTimeoutMs: 150_000,
  });
  const c = await restored.client();
  const ids = (await c.query("SELECT id FROM t ORDER BY id")).rows.map((r) => r.id as number);
  expect(during).toBeGreaterThan(0); // the backup really ran under load
  expect(ids.length).toBeGreaterThan(beforeBackup.length);
  expect(ids).toEqual(atPoint);
  expect(acked.length).toBeGreaterThan(atPoint.length); // later rows existed, and are not here
  expect((await c.query("SELECT timeline_id FROM pg_control_checkpoint()")).rows[0].timeline_id)
    .toBe(2);
  expect(restored.log).toContain("LOG:  archive recovery complete");
  expect(existsSync(join(backupRoot, "d", "recovery.signal"))).toBe(false);
  expect(existsSync(join(backupRoot, "d", "pglite", "recovery.signal"))).toBe(false);
  // Writable: recovery has ended.
  await c.query("INSERT INTO t (payload) VALUES ('after')");
  const o = new pg.Client({
    host: restored.host,
    port: restored.port,
    user: "postgres",
    database: "other",
  });
  await o.connect();
  expect((await o.query("SELECT v FROM o")).rows).toEqual([{ v: "in other" }]);
  // Recovered to the restore point's moment: exactly the rows committed there before it.
  const otherIds = (await o.query("SELECT id FROM ot ORDER BY id")).rows.map((r) => r.id as number);
  expect(otherAtPoint.length).toBeGreaterThan(0);
  expect(otherIds).toEqual(otherAtPoint);
  expect(otherAcked.length).toBeGreaterThan(otherAtPoint.length);
  expect(restored.log).toMatch(/recovery stopping before commit of transaction \d+, time/);
  expect(existsSync(join(backupRoot, "d", "base", String(otherOid), "recovery.signal"))).toBe(
    false,
  );
  await o.query("INSERT INTO ot DEFAULT VALUES"); // writable: its recovery has ended too
  await o.end();

  const refused = await pgtsCli(["basebackup", "-D", join(backupRoot, "d"), "-p", "1"]);
  expect(refused.code).toBe(1);
  expect(refused.err).toContain(`directory "${join(backupRoot, "d")}" exists but is not empty`);
});
