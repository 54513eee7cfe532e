/**
 * `pgts basebackup`: a base backup of a running pgts server, taken over an
 * ordinary connection as a superuser, the way pg_basebackup takes one from
 * PostgreSQL: the server is told (pg_backup_start), its files are read by
 * the server itself (pg_ls_dir, pg_stat_file, pg_read_binary_file: the
 * engine reads them, not this program behind its back), the backup is ended
 * (pg_backup_stop) and its backup_label written into the copy, then the WAL
 * from the backup's start to its end is fetched the same way (`-X fetch`),
 * so that the copy reaches a consistent state by itself.
 *
 * A pgts data directory is several PostgreSQL clusters: `pglite/` for
 * "postgres", `base/<oid>/` for each other database (pg_database.ts), and
 * pgts's own files around them (postgresql.conf, pg_hba.conf, …,
 * `global/pgts_database.json`), which every engine sees under `/pgts`
 * (engines/pglite/backupfs.ts). Each database's cluster is backed up in
 * backup mode on a connection to that database, one after the other, with
 * its own backup_label and WAL: each is consistent in itself, the clusters
 * are not consistent with one another (they have no common WAL). A
 * database no one may connect to (template0) has no session that could
 * change it, and its files are copied as they are.
 *
 * Never writes to the server; exits 1 with pg_basebackup's kind of message
 * on any failure, having ended backup mode if it had started it.
 */

import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { isPgError } from "../core/elog.ts";
import { type CliIO, parseVerbArgs, PROGNAME } from "./args.ts";
import { CONN_OPTIONS, connTarget } from "./conninfo.ts";
import { BackupConnection } from "./basebackup/client.ts";
import { type BackupSink, PlainSink, TarSink } from "./basebackup/sink.ts";

export const BASEBACKUP_USAGE =
  `${PROGNAME} basebackup -D DIRECTORY [-F plain|tar] [-z] [-X fetch|none] [-P] [-h HOST] [-p PORT] [-U NAME]`;

export const BASEBACKUP_HELP =
  `${PROGNAME} basebackup takes a base backup of a running ${PROGNAME} server.

Usage:
  ${BASEBACKUP_USAGE}

Options controlling the output:
  -D, --pgdata=DIRECTORY   receive the base backup into DIRECTORY (created; must be
                           empty if it exists)
  -F, --format=p|t         output format: plain (default; a data directory that
                           "${PROGNAME} start -D" runs) or tar (DIRECTORY/base.tar)
  -z, --gzip               compress the tar output (DIRECTORY/base.tar.gz)
  -X, --wal-method=fetch|none
                           fetch (default): include the WAL each database needs to
                           reach a consistent state; none: include none (recovery
                           then needs the archive: recovery.signal + restore_command)

General options:
  -c, --checkpoint=fast|spread
                           the checkpoint that starts the backup (default: spread;
                           the engine has no background writer, so both run at once)
  -l, --label=LABEL        the backup's label (default: "pgts basebackup")
  -N, --no-sync            do not wait for the files to be written safely to disk
  -P, --progress           show progress on stderr
  -v, --verbose            report each step
  -?, --help               show this help, then exit

Connection options:
  -d, --dbname=DBNAME      the database to connect to first (default: postgres); every
                           database of the cluster is backed up
  -h, --host=HOSTNAME      server host or socket directory (default: $PGHOST, else localhost)
  -p, --port=PORT          server port (default: $PGPORT, else 5432)
  -U, --username=NAME      a superuser's name (default: $PGUSER, else postgres)
  The password, when the server asks for one, is $PGPASSWORD.

Each database is a cluster of its own in ${PROGNAME}: each is backed up in backup mode
(pg_backup_start … pg_backup_stop) with its own backup_label and WAL, one after
the other; they are not consistent with one another. Without -X fetch, or to
recover to a later point, put recovery.signal in the restored directory and set
restore_command (README, "Backups and durability").
`;

/** How much of a file one statement reads. */
const CHUNK = 1 << 20;
const WAL_SEGMENT = 16 << 20;

/** PostgreSQL's basebackup.c: directories whose contents are not copied, files never copied. */
const EXCLUDE_CONTENTS = new Set([
  "pg_wal",
  "pg_stat_tmp",
  "pg_replslot",
  "pg_dynshmem",
  "pg_notify",
  "pg_serial",
  "pg_snapshots",
  "pg_subtrans",
]);
const EXCLUDE_FILES = new Set([
  "postmaster.pid",
  "postmaster.opts",
  "backup_label",
  "backup_label.old",
  "tablespace_map",
  "postgresql.auto.conf.tmp",
  "current_logfiles.tmp",
  "recovery.signal",
  "standby.signal",
]);

interface Listed {
  readonly path: string;
  readonly isDir: boolean;
  readonly size: number;
  readonly mtime: number;
}

interface DatabaseEntry {
  readonly oid: number;
  readonly name: string;
  readonly dir: string;
  readonly allowConn: boolean;
}

class BackupError extends Error {}

/** Lists `root` recursively (as the server sees it), sizes and times from pg_stat_file. */
async function listTree(conn: BackupConnection, root: string): Promise<Listed[]> {
  const rows = await conn.text(
    `with recursive t(path, isdir, size, mtime) as (
       select f, s.isdir, s.size, extract(epoch from s.modification)::bigint
         from pg_ls_dir($1, true, false) f, pg_stat_file($1 || '/' || f, true) s
       union all
       select t.path || '/' || f, s.isdir, s.size, extract(epoch from s.modification)::bigint
         from t, pg_ls_dir($1 || '/' || t.path, true, false) f,
              pg_stat_file($1 || '/' || t.path || '/' || f, true) s
        where t.isdir
     )
     select path, isdir, size, mtime from t where isdir is not null order by path`,
    [root],
  );
  return rows.map(([path, isdir, size, mtime]) => ({
    path: path!,
    isDir: isdir === "t",
    size: Number(size),
    mtime: Number(mtime),
  }));
}

/** Whether a cluster's entry is copied (PostgreSQL's basebackup.c rules). */
function included(e: Listed): boolean {
  const parts = e.path.split("/");
  const last = parts.at(-1)!;
  if (parts.length > 1 && EXCLUDE_CONTENTS.has(parts[0]!)) {
    // pg_wal/archive_status and pg_wal/summaries stay, empty; WAL is fetched apart.
    return e.isDir && parts.length === 2 && parts[0] === "pg_wal";
  }
  return !EXCLUDE_FILES.has(e.path) && !last.startsWith("pgsql_tmp") &&
    !last.startsWith("pg_internal.init");
}

class Progress {
  readonly #io: CliIO;
  readonly #enabled: boolean;
  total = 0;
  done = 0;
  databases = 0;
  database = 0;
  #shown = 0;

  constructor(io: CliIO, enabled: boolean) {
    this.#io = io;
    this.#enabled = enabled;
  }

  add(n: number): void {
    this.done += n;
    if (this.#enabled && Date.now() - this.#shown >= 250) this.show(false);
  }

  /**
   * The last report of a finished copy: what was copied is the whole. The
   * total is an estimate made from the listings, and a file that shrank or
   * vanished while the server kept writing leaves it above what was read,
   * which would end the bar at 99% (pg_basebackup's last report is 100%).
   */
  finish(): void {
    this.total = this.done;
    this.show(true);
  }

  show(last: boolean): void {
    if (!this.#enabled) return;
    this.#shown = Date.now();
    const kb = (n: number) => Math.ceil(n / 1024);
    const total = Math.max(this.total, this.done);
    const pct = total === 0 ? 100 : Math.floor((100 * this.done) / total);
    const w = String(kb(total)).length;
    this.#io.err(
      `${String(kb(this.done)).padStart(w)}/${
        kb(total)
      } kB (${pct}%), ${this.database}/${this.databases} databases${last ? "\n" : "\r"}`,
    );
  }
}

/** Reads one file through the server, CHUNK bytes a statement; null: it vanished before the first read. */
async function* readFile(
  conn: BackupConnection,
  path: string,
  size: number,
  progress: Progress,
): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < size; at += CHUNK) {
    const [row] = await conn.query(
      "select pg_read_binary_file($1, $2, $3, true)",
      [path, String(at), String(Math.min(CHUNK, size - at))],
      true,
    );
    const data = row?.[0] ?? null;
    // Gone (a dropped table) or shorter than listed: the sink pads it, WAL replay removes it.
    if (data === null || data.length === 0) return;
    progress.add(data.length);
    yield data;
    if (data.length < Math.min(CHUNK, size - at)) return;
  }
}

/**
 * Copies the listed entries. Files smaller than a CHUNK are read many to a
 * statement (up to a CHUNK in all): a cluster is about a thousand small
 * files, and each statement waits its turn on the engine behind the
 * clients' statements.
 */
async function copyTree(
  conn: BackupConnection,
  listing: readonly Listed[],
  from: string,
  to: string,
  sink: BackupSink,
  progress: Progress,
): Promise<void> {
  const name = (e: Listed) => (to === "" ? e.path : `${to}/${e.path}`);
  let batch: Listed[] = [];
  let batched = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const rows = await conn.query(
      `select pg_read_binary_file(e->>0, 0, (e->>1)::bigint, true)
         from json_array_elements($1::json) with ordinality as x(e, n) order by n`,
      [JSON.stringify(batch.map((e) => [`${from}/${e.path}`, e.size]))],
      true,
    );
    for (const [i, e] of batch.entries()) {
      const data = rows[i]?.[0] ?? null;
      progress.add(data?.length ?? 0);
      await sink.file(
        name(e),
        { mode: 0o600, mtime: e.mtime, size: e.size },
        one(data ?? new Uint8Array(0)),
      );
    }
    batch = [];
    batched = 0;
  };
  for (const e of listing) {
    if (e.isDir) {
      await flush();
      await sink.directory(name(e), 0o700);
    } else if (e.size < CHUNK) {
      if (batched + e.size > CHUNK) await flush();
      batch.push(e);
      batched += e.size;
    } else {
      await flush();
      await sink.file(
        name(e),
        { mode: 0o600, mtime: e.mtime, size: e.size },
        readFile(conn, `${from}/${e.path}`, e.size, progress),
      );
    }
  }
  await flush();
}

function parseLsn(text: string): bigint {
  const [hi, lo] = text.split("/");
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

/** The WAL segment names from the backup's start segment to the one holding the byte before `stop`. */
function walSegments(startFile: string, stopLsn: bigint): string[] {
  const tli = startFile.slice(0, 8);
  const segsPerId = 0x1_0000_0000n / BigInt(WAL_SEGMENT);
  const first = BigInt(`0x${startFile.slice(8, 16)}`) * segsPerId +
    BigInt(`0x${startFile.slice(16)}`);
  const last = (stopLsn - 1n) / BigInt(WAL_SEGMENT);
  const names: string[] = [];
  for (let s = first; s <= last; s++) {
    const hex = (n: bigint) => n.toString(16).toUpperCase().padStart(8, "0");
    names.push(`${tli}${hex(s / segsPerId)}${hex(s % segsPerId)}`);
  }
  return names;
}

/** One database's cluster in backup mode: start, copy, stop, backup_label, WAL. */
async function backupCluster(
  conn: BackupConnection,
  options: {
    to: string;
    label: string;
    fast: boolean;
    fetchWal: boolean;
    sink: BackupSink;
    progress: Progress;
    log: (m: string) => void;
  },
): Promise<void> {
  const { to, sink, progress } = options;
  try {
    await conn.query("select pg_backup_start($1, $2)", [options.label, String(options.fast)]);
  } catch (e) {
    if (isPgError(e) && e.code === "55000") {
      throw new BackupError(
        `could not initiate base backup: ${e.message}\nHINT:  Another ${PROGNAME} basebackup is running on this database, or a session in backup mode has not ended yet.`,
      );
    }
    throw e;
  }
  let stopped = false;
  try {
    const listing = (await listTree(conn, ".")).filter((e) => included(e));
    progress.total += listing.reduce((n, e) => n + (e.isDir ? 0 : e.size), 0);
    await sink.directory(to, 0o700);
    await copyTree(conn, listing, ".", to, sink, progress);
    const [row] = await conn.text("select lsn, labelfile, spcmapfile from pg_backup_stop(false)");
    stopped = true;
    const [lsn, labelfile, spcmap] = row!;
    const enc = new TextEncoder();
    const label = enc.encode(labelfile!);
    const now = Date.now() / 1000;
    await sink.file(
      `${to}/backup_label`,
      { mode: 0o600, mtime: now, size: label.length },
      one(label),
    );
    if (spcmap !== null && spcmap !== "") {
      const map = enc.encode(spcmap);
      await sink.file(
        `${to}/tablespace_map`,
        { mode: 0o600, mtime: now, size: map.length },
        one(map),
      );
    }
    options.log(`${to}: backup ended at ${lsn}`);
    if (!options.fetchWal) return;
    const startFile = /START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)/.exec(labelfile!)?.[1];
    if (startFile === undefined) {
      throw new BackupError(`invalid backup_label: ${JSON.stringify(labelfile)}`);
    }
    const segments = walSegments(startFile, parseLsn(lsn!));
    progress.total += segments.length * WAL_SEGMENT;
    for (const seg of segments) {
      const [exists] = await conn.text("select size from pg_stat_file($1, true)", [
        `pg_wal/${seg}`,
      ]);
      if (exists?.[0] === null || exists?.[0] === undefined) {
        throw new BackupError(
          `could not fetch WAL segment "${seg}" of "${to}": requested WAL segment has already been removed`,
        );
      }
      await sink.file(
        `${to}/pg_wal/${seg}`,
        { mode: 0o600, mtime: now, size: WAL_SEGMENT },
        readFile(conn, `pg_wal/${seg}`, WAL_SEGMENT, progress),
      );
    }
    // Timeline history files too, as pg_basebackup's: a later archive
    // recovery of the copy may need them, and they are small.
    const history = await conn.text(
      "select f, (pg_stat_file('pg_wal/' || f)).size from pg_ls_dir('pg_wal') f where f like '%.history' order by f",
    );
    for (const [f, size] of history) {
      const n = Number(size);
      await sink.file(
        `${to}/pg_wal/${f}`,
        { mode: 0o600, mtime: now, size: n },
        readFile(conn, `pg_wal/${f}`, n, progress),
      );
    }
    options.log(
      `${to}: ${segments.length} WAL segment(s) included, ${segments[0]} to ${segments.at(-1)}`,
    );
  } finally {
    // Backup mode must not outlive this program: the engine is shared.
    if (!stopped) await conn.query("select pg_backup_stop(false)").catch(() => {});
  }
}

async function* one(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

export async function runBasebackup(args: string[], io: CliIO): Promise<number> {
  const { pgdata: _pgdata, ...connOptions } = CONN_OPTIONS;
  const v = parseVerbArgs("basebackup", args, {
    usage: BASEBACKUP_USAGE,
    io,
    options: {
      ...connOptions,
      pgdata: { type: "string", short: "D" },
      format: { type: "string", short: "F" },
      gzip: { type: "boolean", short: "z" },
      "wal-method": { type: "string", short: "X" },
      checkpoint: { type: "string", short: "c" },
      label: { type: "string", short: "l" },
      "no-sync": { type: "boolean", short: "N" },
      progress: { type: "boolean", short: "P" },
      verbose: { type: "boolean", short: "v" },
      help: { type: "boolean", short: "?" },
    },
  });
  if (v.help) {
    io.out(BASEBACKUP_HELP);
    return 0;
  }
  const fail = (message: string): number => {
    io.err(`${PROGNAME} basebackup: error: ${message}\n`);
    return 1;
  };
  const out = v.pgdata;
  if (out === undefined || out === "") {
    io.err(`${PROGNAME} basebackup: error: no target directory specified\n`);
    io.err(`Try "${PROGNAME} basebackup --help" for more information.\n`);
    return 1;
  }
  const format = v.format ?? "plain";
  if (!["p", "plain", "t", "tar"].includes(format)) {
    return fail(`invalid output format "${format}", must be "plain" or "tar"`);
  }
  const tar = format.startsWith("t");
  if (v.gzip === true && !tar) return fail("only tar mode backups can be compressed");
  const walMethod = v["wal-method"] ?? "fetch";
  if (walMethod === "stream" || walMethod === "s") {
    return fail(`wal-method "stream" is not supported: ${PROGNAME} has no WAL sender; use "fetch"`);
  }
  if (!["fetch", "f", "none", "n"].includes(walMethod)) {
    return fail(`invalid wal-method option "${walMethod}", must be "fetch" or "none"`);
  }
  const checkpoint = v.checkpoint ?? "spread";
  if (checkpoint !== "fast" && checkpoint !== "spread") {
    return fail(`invalid checkpoint argument "${checkpoint}", must be "fast" or "spread"`);
  }
  if (existsSync(out) && readdirSync(out).length > 0) {
    return fail(`directory "${out}" exists but is not empty`);
  }
  const target = connTarget("basebackup", {
    ...v,
    dbname: v.dbname ?? "postgres",
    pgdata: undefined,
  }, io);
  const progress = new Progress(io, v.progress === true);
  const log = (m: string) => {
    if (!v.verbose) return;
    progress.show(true); // the message on a line of its own
    io.err(`${PROGNAME} basebackup: ${m}\n`);
  };
  const started = Date.now();
  let main: BackupConnection;
  try {
    main = await BackupConnection.open(target, target.database);
  } catch (e) {
    return fail(
      `connection to server ${target.display} failed: ${
        (e as Error).message.replace(/^could not connect to the upstream server: /, "")
      }`,
    );
  }
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const sync = v["no-sync"] !== true;
  const sink: BackupSink = tar
    ? new TarSink(join(out, v.gzip === true ? "base.tar.gz" : "base.tar"), {
      gzip: v.gzip === true,
      sync,
    })
    : new PlainSink(out, { sync });
  const common = {
    label: v.label ?? "pgts basebackup",
    fast: checkpoint === "fast",
    fetchWal: walMethod.startsWith("f"),
    sink,
    progress,
    log,
  };
  try {
    const [superuser] = await main.text(
      "select rolsuper from pg_roles where rolname = current_user",
    );
    if (superuser?.[0] !== "t") {
      throw new BackupError(
        `must be superuser to take a base backup (role "${target.user}" is not)`,
      );
    }
    // pgts's own files: everything outside the databases' clusters.
    const [catalog] = await main.query(
      "select pg_read_binary_file('/pgts/global/pgts_database.json')",
      [],
      true,
    );
    const databases =
      (JSON.parse(new TextDecoder().decode(catalog![0]!)) as { databases: DatabaseEntry[] })
        .databases;
    const clusterDirs = new Set(["pglite", ...databases.map((d) => d.dir)]);
    const outer = (await listTree(main, "/pgts")).filter((e) =>
      !EXCLUDE_FILES.has(e.path) &&
      ![...clusterDirs].some((d) => e.path === d || e.path.startsWith(`${d}/`))
    );
    const onDisk = new Set(
      (await main.text("select pg_ls_dir('/pgts/base', true, false)")).map((r) => `base/${r[0]}`),
    );
    const present = databases.filter((d) => d.dir === "pglite" || onDisk.has(d.dir));
    progress.total = outer.reduce((n, e) => n + (e.isDir ? 0 : e.size), 0);
    progress.databases = present.length;
    await copyTree(main, outer, "/pgts", "", sink, progress);
    log(`configuration and catalog files copied (${outer.length} entries)`);
    // "postgres" first: it is the connection already open.
    present.sort((a, b) => (a.dir === "pglite" ? -1 : b.dir === "pglite" ? 1 : a.oid - b.oid));
    for (const db of present) {
      progress.database++;
      if (db.dir === "pglite") {
        await backupCluster(main, { ...common, to: db.dir });
      } else if (db.allowConn) {
        const conn = await BackupConnection.open(target, db.name);
        try {
          await backupCluster(conn, { ...common, to: db.dir });
        } finally {
          conn.close();
        }
      } else {
        // No session can change it: its files are copied as they are.
        const listing = (await listTree(main, `/pgts/${db.dir}`)).filter((e) => included(e));
        progress.total += listing.reduce((n, e) => n + (e.isDir ? 0 : e.size), 0);
        await sink.directory(db.dir, 0o700);
        await copyTree(main, listing, `/pgts/${db.dir}`, db.dir, sink, progress);
      }
      log(`database "${db.name}" backed up (${db.dir})`);
    }
    await sink.close();
    progress.finish();
    log(`base backup completed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return 0;
  } catch (e) {
    progress.show(true);
    await sink.close().catch(() => {});
    const message = e instanceof BackupError
      ? e.message
      : isPgError(e)
      ? `${e.message}`
      : String(e);
    return fail(message);
  } finally {
    main.close();
  }
}
