/**
 * pg_stat_archiver for pgts's archiver (PostgreSQL's pgstat_archiver.c).
 *
 * The archiver is a child of its own (src/server/archiver.ts) that keeps
 * its counters in the data directory, `pgts_stat_archiver.json`, rewritten
 * whole (a rename) after each change; it is the file's only writer. PGlite's
 * own pg_stat_archiver knows only PGlite's archiver, which never runs, so
 * every engine's view is replaced (once per cluster, engine.ts) by one that
 * reads that file through the data directory's mount at `/pgts`
 * (backupfs.ts), so it says the same thing in every database.
 *
 * `pg_stat_reset_shared('archiver')` (or NULL: everything) resets it as
 * PostgreSQL does, with a reset offset rather than by zeroing the counters:
 * the function, run in whichever engine the caller uses, writes the
 * counters as they are now and the time to `pgts_stat_archiver_reset.json`,
 * and every reader subtracts that offset (pgstat_archiver_snapshot_cb: a
 * count equal to its offset shows no last WAL file and no last time). Each
 * file keeps one writer, so a reset never races an archiver's update. A
 * reset file whose counts exceed the counters belongs to other counters
 * (they were removed) and is ignored. Before any reset and any archiving,
 * stats_reset is the engine's own (when PGlite's statistics began), as
 * PostgreSQL's is from initdb or the last crash; it was NULL.
 *
 * pg_stat_reset_shared is a builtin, which fmgr calls by its OID without
 * reading pg_proc, so it cannot be replaced by SQL: `installArchiverReset`
 * puts a host function in the builtin's slot of PGlite's function table
 * (as backends.ts does), which runs the builtin first (it checks the target,
 * 22023 for an unknown one, and resets PGlite's own shared statistics) and
 * then writes the offset through the `/pgts` mount (a rename, so a reader
 * never sees half of it). The builtin keeps its ACL: superusers, and whom
 * they grant it to.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DATADIR_MOUNT } from "./backupfs.ts";
import { argDatum, textOfDatum, wrapBuiltin } from "./backends.ts";
import type { WasmTools } from "./wasmtools.ts";

/** pg_stat_archiver's columns. */
export interface ArchiverStats {
  archived_count: number;
  last_archived_wal: string | null;
  last_archived_time: string | null;
  failed_count: number;
  last_failed_wal: string | null;
  last_failed_time: string | null;
  stats_reset: string | null;
}

/** The archiver's counters, in the data directory (the archiver writes them). */
export const ARCHIVER_STATS_FILE = "pgts_stat_archiver.json";
/** The offsets of the last pg_stat_reset_shared('archiver') (the engines write them). */
export const ARCHIVER_RESET_FILE = "pgts_stat_archiver_reset.json";

interface ResetOffset {
  archived_count: number;
  failed_count: number;
  stats_reset: string;
}

function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    // Missing, or a reset file caught while an engine writes it.
    return null;
  }
}

/** The counters as the archiver last wrote them, without the reset offset (the archiver's own). */
export function readArchiverCounters(dataDir: string): ArchiverStats | null {
  return readJson<ArchiverStats>(join(dataDir, ARCHIVER_STATS_FILE));
}

/**
 * pg_stat_archiver's row as a client sees it (the offset of the last
 * reset applied), or null when no archiver ever wrote its counters.
 */
export function readArchiverStats(dataDir: string): ArchiverStats | null {
  const s = readArchiverCounters(dataDir);
  if (s === null) return null;
  const o = readJson<ResetOffset>(join(dataDir, ARCHIVER_RESET_FILE));
  if (o === null || o.archived_count > s.archived_count || o.failed_count > s.failed_count) {
    return s;
  }
  const archivedSince = s.archived_count !== o.archived_count;
  const failedSince = s.failed_count !== o.failed_count;
  return {
    archived_count: s.archived_count - o.archived_count,
    last_archived_wal: archivedSince ? s.last_archived_wal : null,
    last_archived_time: archivedSince ? s.last_archived_time : null,
    failed_count: s.failed_count - o.failed_count,
    last_failed_wal: failedSince ? s.last_failed_wal : null,
    last_failed_time: failedSince ? s.last_failed_time : null,
    stats_reset: o.stats_reset,
  };
}

const STATS = `${DATADIR_MOUNT}/${ARCHIVER_STATS_FILE}`;
const RESET = `${DATADIR_MOUNT}/${ARCHIVER_RESET_FILE}`;

/**
 * The DDL that makes pg_stat_archiver pgts's (idempotent; the bootstrap
 * superuser runs it). The reader is SECURITY DEFINER because pg_read_file
 * is for superusers, while pg_stat_archiver is for everyone. A file that is
 * missing or not JSON reads as none.
 */
export const STAT_ARCHIVER_SQL = `
CREATE OR REPLACE FUNCTION pg_catalog.pgts_stat_get_archiver(
  OUT archived_count bigint, OUT last_archived_wal text, OUT last_archived_time timestamptz,
  OUT failed_count bigint, OUT last_failed_wal text, OUT last_failed_time timestamptz,
  OUT stats_reset timestamptz)
RETURNS record LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $pgts$
  WITH f AS (
    SELECT pg_read_file('${STATS}', true) AS stats, pg_read_file('${RESET}', true) AS reset
  ), s AS (
    SELECT coalesce(s.archived_count, 0) AS archived_count, s.last_archived_wal,
      s.last_archived_time, coalesce(s.failed_count, 0) AS failed_count, s.last_failed_wal,
      s.last_failed_time, s.stats_reset
    FROM f, json_to_record(CASE WHEN pg_input_is_valid(f.stats, 'json') THEN f.stats::json
      ELSE '{}' END) AS s(archived_count bigint, last_archived_wal text,
      last_archived_time timestamptz, failed_count bigint, last_failed_wal text,
      last_failed_time timestamptz, stats_reset timestamptz)
  ), o AS (
    SELECT o.* FROM f, s, json_to_record(CASE WHEN pg_input_is_valid(f.reset, 'json')
      THEN f.reset::json ELSE '{}' END) AS o(archived_count bigint, failed_count bigint,
      stats_reset timestamptz)
    WHERE o.archived_count <= s.archived_count AND o.failed_count <= s.failed_count
  )
  SELECT s.archived_count - coalesce(o.archived_count, 0),
    CASE WHEN s.archived_count = o.archived_count THEN NULL ELSE s.last_archived_wal END,
    CASE WHEN s.archived_count = o.archived_count THEN NULL ELSE s.last_archived_time END,
    s.failed_count - coalesce(o.failed_count, 0),
    CASE WHEN s.failed_count = o.failed_count THEN NULL ELSE s.last_failed_wal END,
    CASE WHEN s.failed_count = o.failed_count THEN NULL ELSE s.last_failed_time END,
    coalesce(o.stats_reset, s.stats_reset,
      (SELECT a.stats_reset FROM pg_catalog.pg_stat_get_archiver() a))
  FROM s LEFT JOIN o ON true
$pgts$;
CREATE OR REPLACE VIEW pg_catalog.pg_stat_archiver AS
  SELECT * FROM pg_catalog.pgts_stat_get_archiver();
GRANT SELECT ON pg_catalog.pg_stat_archiver TO PUBLIC;
`;

/** True when the cluster's pg_stat_archiver is already pgts's (the query's one value). */
export const STAT_ARCHIVER_INSTALLED_SQL =
  "select pg_catalog.pg_get_viewdef('pg_catalog.pg_stat_archiver'::pg_catalog.regclass)" +
  " like '%pgts_stat_get_archiver%'" +
  " and pg_catalog.pg_get_functiondef(" +
  "pg_catalog.to_regproc('pg_catalog.pgts_stat_get_archiver')::pg_catalog.oid)" +
  " like '%pg_stat_get_archiver()%'";

/** pg_stat_reset_shared's OID (pg_proc.dat). */
const F_PG_STAT_RESET_SHARED = 3775;

/** The part of Emscripten's FS the reset uses (paths inside the engine). */
export interface ResetFs {
  readFile(path: string, options: { encoding: "utf8" }): string;
  writeFile(path: string, data: string): void;
  rename(from: string, to: string): void;
}

/** The target argument of a pg_stat_reset_shared call: null for NULL. */
function targetOf(tools: WasmTools, fcinfo: number): string | null {
  // NullableDatum: the Datum, then isnull.
  if (tools.view().getUint8(fcinfo + 20 + 4) !== 0) return null;
  return textOfDatum(tools, argDatum(tools, fcinfo, 0));
}

/**
 * Puts pgts's pg_stat_reset_shared in the builtin's slot: the builtin, then
 * the archiver's reset offset when the target is "archiver" or NULL and
 * the data directory is mounted (a memory:// engine has no archiver).
 */
export function installArchiverReset(tools: WasmTools, fs: ResetFs): void {
  wrapBuiltin(tools, F_PG_STAT_RESET_SHARED, (fcinfo, builtin) => {
    const target = targetOf(tools, fcinfo);
    const result = builtin(fcinfo);
    if (target === null || target === "archiver") {
      let text: string;
      try {
        text = fs.readFile(STATS, { encoding: "utf8" });
      } catch {
        // No /pgts, or no archiver ever ran: nothing to offset yet.
        text = "{}";
      }
      let counters: Partial<ArchiverStats> = {};
      try {
        counters = JSON.parse(text) as Partial<ArchiverStats>;
      } catch {
        // Never half written (a rename); treated as none.
      }
      const offset: ResetOffset = {
        archived_count: counters.archived_count ?? 0,
        failed_count: counters.failed_count ?? 0,
        stats_reset: new Date().toISOString(),
      };
      try {
        fs.writeFile(`${RESET}.tmp`, JSON.stringify(offset) + "\n");
        fs.rename(`${RESET}.tmp`, RESET);
      } catch {
        // No data directory mounted (memory://): no archiver to reset.
      }
    }
    return result;
  });
}
