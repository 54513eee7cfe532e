/**
 * Creating and opening a PGlite cluster: `initCluster` is pgts's initdb,
 * `openEngine` its postmaster-side start of the one engine over a data
 * directory (or "memory://"). Both start from the cluster image (image.ts)
 * when there is one: a copy instead of PGlite's 10-second initdb.
 *
 * Durability: with `fsync` on (the default, as in PostgreSQL; a memory://
 * cluster is exempt) Postgres fsyncs as PostgreSQL does: each commit's WAL
 * (fdatasync, `wal_sync_method`) before the commit is answered when
 * `synchronous_commit` is on, and the data files at each checkpoint
 * (fsync.ts makes those calls real). `syncToFs` stays false: for NODEFS
 * and MEMFS it is a no-op, every write already went to the operating
 * system. With fsync off, committed data survives SIGKILL of the engine
 * process (tests/engines/pglite/durability.test.ts) but not an
 * operating-system crash or power loss.
 *
 * Must never open a data directory that another process has open: PGlite
 * takes no lock, and a second instance on the same files, with buffers and
 * a WAL position of its own, corrupts the cluster.
 * The postmaster's postmaster.pid guards that; this module does not.
 */

import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { type EngineOptions, PgliteEngine } from "./engine.ts";
import type { RawExecutor } from "./executor.ts";
import { startExecutor } from "./placement.ts";
import type { SettingFiles } from "./settingsource.ts";
import { buildScramSecret } from "../../core/auth/scram.ts";
import {
  buildClusterImage,
  cachedImagePath,
  findClusterImage,
  imagesEnabled,
  type ImageSource,
  unpackClusterImage,
} from "./image.ts";
import { concat, fe, firstError, quoteIdent, quoteLiteral } from "./wire.ts";

export interface InitClusterOptions {
  /**
   * The bootstrap superuser's name (default "postgres"). PGlite's initdb
   * names it "postgres"; another name renames that role, so the cluster
   * has one superuser, as initdb -U makes it.
   */
  readonly user?: string;
  /** Password for `user`, stored as a SCRAM-SHA-256 secret; none by default. */
  readonly password?: string;
  /**
   * The cluster image to copy (image.ts); false runs PGlite's initdb in the
   * directory instead. Default: the image findClusterImage() names, else
   * initdb.
   */
  readonly image?: ImageSource | false;
}

export interface OpenEngineOptions extends EngineOptions {
  /** Where PGlite runs: a Worker thread (default; statements can be cancelled) or the calling thread. */
  readonly placement?: "worker" | "inline";
  /** With a Worker, microseconds it polls for the next statement before sleeping (pgts.engine_spin_time). */
  readonly spinUs?: number;
  /** Server settings (`-c name=value`), applied at start as postgresql.conf would. */
  readonly settings?: Readonly<Record<string, string>>;
  /** The settings of `settings` that pgts's files set, with file and line (settingsource.ts). */
  readonly settingFiles?: SettingFiles;
  /** Replaces the PGlite executor (tests inject faults through it). */
  readonly executor?: RawExecutor;
  /** The database of the cluster the engine serves (default: PGlite's, "postgres"). */
  readonly database?: string;
}

function isMemory(dataDir: string): boolean {
  return dataDir.startsWith("memory://");
}

/** A role name nobody has: the rename's session runs as it for a moment. */
const RENAMER = "pgts_initdb_rename";

/**
 * What makes a new cluster differ from PGlite's initdb output: the
 * superuser's name and password. PostgreSQL refuses to rename the session
 * user, which in PGlite's single-user backend is always the bootstrap
 * superuser, so the rename runs under a superuser that exists only for it.
 * The password is sent as a SCRAM secret computed here: the plain text
 * never reaches the engine, its logs or its catalogs.
 */
async function bootstrapSql(user: string, password: string | undefined): Promise<string[]> {
  const sql: string[] = [];
  if (user !== "postgres") {
    const renamer = quoteIdent(user === RENAMER ? `${RENAMER}_` : RENAMER);
    sql.push(
      `CREATE ROLE ${renamer} SUPERUSER`,
      `SET SESSION AUTHORIZATION ${renamer}`,
      `ALTER ROLE postgres RENAME TO ${quoteIdent(user)}`,
      // Not RESET: the identity guard (guard.ts) refuses to reset session_authorization.
      `SET SESSION AUTHORIZATION ${quoteIdent(user)}`,
      `DROP ROLE ${renamer}`,
    );
  }
  if (password !== undefined) {
    sql.push(
      `ALTER ROLE ${quoteIdent(user)} PASSWORD ${quoteLiteral(await buildScramSecret(password))}`,
    );
  }
  return sql;
}

/** Creates a cluster in `dataDir`, which must not exist or be empty (initdb's rule). */
export async function initCluster(
  dataDir: string,
  options: InitClusterOptions = {},
): Promise<void> {
  if (isMemory(dataDir)) throw new RangeError("initCluster needs a directory, not memory://");
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) {
    throw new Error(`directory "${dataDir}" exists but is not empty`);
  }
  const image = options.image ?? findClusterImage();
  if (image !== false && image !== null) unpackClusterImage(image, dataDir);
  const sql = await bootstrapSql(options.user ?? "postgres", options.password);
  // A copy of the image needs the engine only to change something; without
  // an image, opening it runs PGlite's initdb.
  if (sql.length === 0 && image !== false && image !== null) return;
  const ex = await startExecutor(dataDir, { placement: "inline" });
  try {
    for (const s of sql) {
      const parts: Uint8Array[] = [];
      await ex.exec(fe.query(s), (c) => void parts.push(c));
      const err = firstError(concat(parts));
      if (err !== null) throw new Error(`initCluster: ${err.message}`);
    }
  } finally {
    await ex.close();
  }
}

/**
 * The image a memory:// engine starts from, made now if this is its first
 * use; null (PGlite's initdb, as before images) when images are off or the
 * image cannot be made, e.g. in a read-only cache.
 */
export async function memoryImage(): Promise<ImageSource | null> {
  if (!imagesEnabled()) return null;
  const found = findClusterImage();
  if (found !== null || cachedImagePath() === null) return found;
  try {
    return await buildClusterImage();
  } catch {
    return null;
  }
}

/** Opens the engine over an initialised data directory, or a fresh "memory://" cluster. */
export async function openEngine(
  dataDir: string,
  options: OpenEngineOptions = {},
): Promise<PgliteEngine> {
  if (!isMemory(dataDir) && !existsSync(join(dataDir, "PG_VERSION"))) {
    throw new Error(`"${dataDir}" is not a database cluster directory (run initCluster first)`);
  }
  const image = options.executor === undefined && isMemory(dataDir) ? await memoryImage() : null;
  const executor = options.executor ?? await startExecutor(dataDir, {
    ...(options.placement !== undefined ? { placement: options.placement } : {}),
    ...(options.spinUs !== undefined ? { spinUs: options.spinUs } : {}),
    ...(options.settings !== undefined ? { settings: options.settings } : {}),
    ...(options.settingFiles !== undefined ? { settingFiles: options.settingFiles } : {}),
    ...(image !== null ? { image } : {}),
    ...(options.database !== undefined ? { database: options.database } : {}),
    // Only a prepared transaction can hold a lock the backend waits for.
    lockWaitMs: Number(options.settings?.["max_prepared_transactions"] ?? 0) > 0
      ? options.engineWaitTimeoutMs ?? 5000
      : 0,
  });
  const engine = new PgliteEngine(executor, options);
  if (
    Number(options.settings?.["max_prepared_transactions"] ?? 0) > 0 && !executor.boundsLockWaits
  ) {
    engine.lockWaitsUnbounded = options.placement === "inline"
      ? "With engine_placement = inline nothing runs beside a statement to end its wait."
      : "This PGlite build's PGPROC layout is not known to pgts.";
  }
  try {
    await engine.init();
  } catch (e) {
    await executor.close();
    throw e;
  }
  return engine;
}
