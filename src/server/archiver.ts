/**
 * The archiver (PostgreSQL's pgarch.c): archives each completed WAL segment
 * of the cluster with `archive_command` (through the shell) or
 * `archive_library`, oldest first, and marks it archived.
 *
 * PGlite marks a segment it completed (a switch, or 16 MB written) with
 * `pg_wal/archive_status/<segment>.ready` when the engine runs with
 * `archive_mode` and `wal_level = replica`. This child finds those files,
 * runs the command with PostgreSQL's rules — `%p` is the segment's path
 * relative to the cluster's directory (its working directory), `%f` its
 * file name, `%%` a percent sign; success only on exit status 0 — and on
 * success renames `.ready` to `.done`, after which a checkpoint may remove
 * or recycle the segment. A failure is retried twice a second apart
 * (NUM_ARCHIVE_RETRIES = 3); then it gives up until a new segment is ready
 * or a minute has passed (PGARCH_AUTOWAKE_INTERVAL), and starts again from
 * the same segment: none is ever skipped. The command ended by a signal, or
 * a shell that cannot run it (exit 126/127), is FATAL: the child exits and
 * the postmaster starts a new one, as PostgreSQL's does.
 *
 * `archive_library` names a module export instead ('/path/mod.ts#archive'):
 * a function `(path, fileName)` whose `true` (or a promise of it) means
 * the segment is safely archived, for archiving to object storage without
 * a shell. `path` is absolute.
 *
 * Its counters are pg_stat_archiver's columns, kept in the data directory
 * (`pgts_stat_archiver.json`, rewritten whole after each change) for
 * `pgts status`, the admin API and every engine's pg_stat_archiver
 * (src/engines/pglite/pgstat_archiver.ts, which also owns their reset). SIGUSR2 (the end of a shutdown) archives what is ready and
 * exits; SIGQUIT exits at once; SIGHUP re-reads postgresql.conf, so a new
 * archive_command applies to the next attempt.
 *
 * It shares no state with the engine, so its exit never causes a crash
 * cycle (backendtype.ts). Every database is a PGlite cluster with its own
 * pg_wal (`DIR/pglite` for "postgres", `DIR/base/<oid>` for the others),
 * and each is archived: "postgres"'s files under their own names, the
 * others' as `base_<oid>_<name>` (`%f`; recovery.ts says why and how
 * restore_command finds them), "postgres"'s first, then the others' by OID.
 */

import { spawn } from "node:child_process";
import { existsSync, readdirSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { ereport } from "../core/elog.ts";
import type { Guc } from "../core/guc/guc.ts";
import {
  ARCHIVER_STATS_FILE,
  type ArchiverStats,
  readArchiverCounters,
  readArchiverStats,
} from "../engines/pglite/pgstat_archiver.ts";
import { archivePrefix, otherDatabaseClusters } from "../engines/pglite/recovery.ts";
import { ENGINE_DIR } from "../core/datadir.ts";

export { type ArchiverStats, readArchiverStats };

const NUM_ARCHIVE_RETRIES = 3;
const RETRY_DELAY_MS = 1000;
const PGARCH_AUTOWAKE_INTERVAL_MS = 60_000;
/** How often archive_status is looked at for a new `.ready` (PostgreSQL's latch is set by the writer). */
const POLL_MS = 500;

const LOG = { category: "archiver" } as const;

export interface ArchiverOptions {
  /** The pgts data directory (the counters' file). */
  readonly dataDir: string;
  /** The settings now: archive_command and archive_library, re-read on SIGHUP. */
  settings(): { command: string; library: string };
  /** Resolves when the child must archive what is ready and exit (SIGUSR2). */
  readonly finish: Promise<void>;
  /** Aborted when the child must exit at once (SIGQUIT, SIGKILL, postmaster death). */
  readonly quit: AbortSignal;
}

/** A file marked .ready: its cluster's directory, its name there, its name in the archive. */
interface ReadyFile {
  readonly cluster: string;
  readonly name: string;
  readonly archiveName: string;
}

/** A segment the command could not archive in a way that ends the archiver (FATAL). */
class ArchiverFatal extends Error {}

/** PgArchiverMain's loop: 0 on a clean exit, 1 after a FATAL. */
export async function pgArchiverMain(options: ArchiverOptions): Promise<number> {
  const statsFile = join(options.dataDir, ARCHIVER_STATS_FILE);
  const stats: ArchiverStats = readArchiverCounters(options.dataDir) ?? {
    archived_count: 0,
    last_archived_wal: null,
    last_archived_time: null,
    failed_count: 0,
    last_failed_wal: null,
    last_failed_time: null,
    stats_reset: new Date().toISOString(),
  };
  const save = () => {
    const tmp = `${statsFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(stats, null, 1) + "\n");
    renameSync(tmp, statsFile);
  };
  let finishing = false;
  void options.finish.then(() => (finishing = true));

  /** Every database's files marked .ready: "postgres"'s first, then the others' by OID. */
  const ready = (): ReadyFile[] => {
    const files: ReadyFile[] = [];
    for (const dir of [ENGINE_DIR, ...otherDatabaseClusters(options.dataDir)]) {
      const cluster = join(options.dataDir, dir);
      let names: string[];
      try {
        names = readdirSync(join(cluster, "pg_wal", "archive_status"));
      } catch {
        continue; // dropped meanwhile, or never opened
      }
      const prefix = archivePrefix(dir);
      files.push(
        ...names.filter((n) => n.endsWith(".ready")).map((n) => n.slice(0, -6)).sort(
          // Timeline history files first, as pgarch_readyXlog prefers them.
          (a, b) =>
            Number(b.endsWith(".history")) - Number(a.endsWith(".history")) || (a < b ? -1 : 1),
        ).map((name) => ({ cluster, name, archiveName: prefix + name })),
      );
    }
    return files;
  };

  /** Waits `ms`, or less when a new segment is ready, the end is asked for, or the child must quit. */
  const sleep = async (ms: number, known: ReadonlySet<string>) => {
    const until = Date.now() + ms;
    while (Date.now() < until && !finishing && !options.quit.aborted) {
      await new Promise((r) => setTimeout(r, Math.min(POLL_MS, until - Date.now())));
      if (ready().some((f) => !known.has(f.archiveName))) return;
    }
  };

  /** pgarch_ArchiverCopyLoop: archives what is ready, oldest first; false when it gave up for now. */
  const copyLoop = async (): Promise<boolean> => {
    for (;;) {
      if (options.quit.aborted) return true;
      const file = ready()[0];
      if (file === undefined) return true;
      const { cluster, name: next, archiveName } = file;
      const status = join(cluster, "pg_wal", "archive_status");
      const { command, library } = options.settings();
      if (command === "" && library === "") {
        ereport("WARNING", "archive_mode enabled, yet archiving is not configured", {
          ...LOG,
          hint: "Either archive_command or archive_library must be set.",
        });
        return false;
      }
      const segment = join(cluster, "pg_wal", next);
      if (!existsSync(segment)) {
        // The segment is gone (removed by hand): nothing to archive.
        ereport(
          "WARNING",
          `removal of orphan archive status file "${join(status, next)}.ready"`,
          LOG,
        );
        try {
          unlinkSync(join(status, `${next}.ready`));
        } catch {
          // Already gone.
        }
        continue;
      }
      let done = false;
      for (let attempt = 1; attempt <= NUM_ARCHIVE_RETRIES && !options.quit.aborted; attempt++) {
        done = library !== ""
          ? await archiveWithLibrary(library, segment, archiveName, options.dataDir)
          : await archiveWithCommand(command, { name: next, archiveName, cwd: cluster });
        if (done) break;
        stats.failed_count++;
        stats.last_failed_wal = archiveName;
        stats.last_failed_time = new Date().toISOString();
        save();
        if (attempt < NUM_ARCHIVE_RETRIES) await new Promise((r) => setTimeout(r, RETRY_DELAY_MS));
      }
      if (!done) {
        if (!options.quit.aborted) {
          ereport(
            "WARNING",
            `archiving write-ahead log file "${archiveName}" failed too many times, will try again later`,
            LOG,
          );
        }
        return false;
      }
      renameSync(join(status, `${next}.ready`), join(status, `${next}.done`));
      stats.archived_count++;
      stats.last_archived_wal = archiveName;
      stats.last_archived_time = new Date().toISOString();
      save();
      ereport("DEBUG1", `archived write-ahead log file "${archiveName}"`, LOG);
    }
  };

  try {
    for (;;) {
      await copyLoop();
      if (options.quit.aborted) return 2;
      if (finishing) {
        // A last round for what the shutdown checkpoint completed.
        await copyLoop();
        return 0;
      }
      await sleep(PGARCH_AUTOWAKE_INTERVAL_MS, new Set(ready().map((f) => f.archiveName)));
    }
  } catch (e) {
    if (e instanceof ArchiverFatal) return 1;
    throw e;
  }
}

/**
 * `archive_command` with %p, %f and %% replaced (pgarch.c's
 * BuildRestoreCommand rules): %p the file's path in its cluster, %f its
 * name in the archive (recovery.ts's archivePrefix).
 */
export function buildArchiveCommand(
  command: string,
  file: { readonly name: string; readonly archiveName: string },
): string {
  return command.replace(
    /%[pf%]/g,
    (m) => m === "%p" ? `pg_wal/${file.name}` : m === "%f" ? file.archiveName : "%",
  );
}

/** Runs archive_command through the shell in the cluster's directory; true on exit status 0. */
function archiveWithCommand(
  command: string,
  file: { readonly name: string; readonly archiveName: string; readonly cwd: string },
): Promise<boolean> {
  const cwd = file.cwd;
  const text = buildArchiveCommand(command, file);
  return new Promise((resolvePromise, reject) => {
    const child = spawn("/bin/sh", ["-c", text], { cwd, stdio: ["ignore", "inherit", "inherit"] });
    child.once("error", (e) => {
      ereport("FATAL", `could not execute archive command: ${e.message}`, {
        ...LOG,
        detail: `The failed archive command was: ${text}`,
      });
      reject(new ArchiverFatal());
    });
    child.once("exit", (code, signal) => {
      if (code === 0) return resolvePromise(true);
      const detail = `The failed archive command was: ${text}`;
      if (signal !== null || code === 126 || code === 127) {
        // wait_result_is_any_signal(rc, true): the shell could not run it,
        // or it was killed: PostgreSQL's archiver exits (FATAL) and is restarted.
        ereport(
          "FATAL",
          signal !== null
            ? `archive command was terminated by signal ${signal}`
            : `archive command failed with exit code ${code}`,
          { ...LOG, detail },
        );
        return reject(new ArchiverFatal());
      }
      ereport("LOG", `archive command failed with exit code ${code}`, { ...LOG, detail });
      resolvePromise(false);
    });
  });
}

type ArchiveFunction = (path: string, fileName: string) => boolean | Promise<boolean>;

/** Runs archive_library's function; true when it says the segment is archived. */
async function archiveWithLibrary(
  library: string,
  path: string,
  fileName: string,
  dataDir: string,
): Promise<boolean> {
  const hash = library.lastIndexOf("#");
  const file = hash < 0 ? library : library.slice(0, hash);
  const name = hash < 0 ? "archive" : library.slice(hash + 1);
  let fn: unknown;
  try {
    const mod = await import(isAbsolute(file) ? file : resolve(dataDir, file)) as Record<
      string,
      unknown
    >;
    fn = mod[name];
  } catch (e) {
    ereport("FATAL", `could not load archive library "${library}"`, {
      ...LOG,
      detail: e instanceof Error ? e.message : String(e),
    });
    throw new ArchiverFatal();
  }
  if (typeof fn !== "function") {
    ereport("FATAL", `archive modules must register an archive callback`, {
      ...LOG,
      detail: `"${library}" exports no function "${name}".`,
    });
    throw new ArchiverFatal();
  }
  try {
    if (await (fn as ArchiveFunction)(path, fileName)) return true;
    ereport("LOG", `archive module failed for file "${fileName}"`, LOG);
  } catch (e) {
    ereport("LOG", `archive module failed for file "${fileName}"`, {
      ...LOG,
      detail: e instanceof Error ? e.message : String(e),
    });
  }
  return false;
}

/** The settings of a running archiver, re-read from postgresql.conf on SIGHUP. */
export function archiverSettings(guc: Guc): { command: string; library: string } {
  return { command: guc.getString("archive_command"), library: guc.getString("archive_library") };
}
