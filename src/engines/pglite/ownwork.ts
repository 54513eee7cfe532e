/**
 * The engine's own work on its backend (engine.ts): the SQL pgts runs for
 * itself rather than as a session's input, such as the reads and repairs
 * of the engine's start, catalog reads, the cluster's statements
 * (pg_database's mirror, roles copied from another database, CHECKPOINT)
 * and the clean-up of a closed session that did not hold the backend. It
 * owns the holder that queues for the backend like a session does
 * (scheduler.ts), the running of SQL as one simple-protocol Query whose
 * first error is thrown, the served database's oid, and the background
 * jobs the engine waits for at close.
 *
 * Must never run SQL while a session owns the backend, unless called by
 * that session's path: everything else goes through `withEngine`.
 */

import { ereport, PgError } from "../../core/elog.ts";
import { startupTrace } from "../../core/starttrace.ts";
import { STAT_ACTIVITY_INSTALLED_SQL, STAT_ACTIVITY_SQL } from "./activity.ts";
import { BackendSettings } from "./backendsettings.ts";
import { STAT_ARCHIVER_INSTALLED_SQL, STAT_ARCHIVER_SQL } from "./pgstat_archiver.ts";
import { EngineCatalogs } from "./postinit.ts";
import type { EngineScheduler, Holder } from "./scheduler.ts";
import { TempSchemas } from "./tempschemas.ts";
import { dataRows, fe, firstError, readInt32, resultSets } from "./wire.ts";
import { BE } from "../../core/protocol/constants.ts";
import { parseErrorResponse, pgErrorFromFields } from "../../core/protocol/backend-reader.ts";

/** Whether an extension of a user's was created (plpgsql is initdb's). */
const EXTENSIONS_CREATED_SQL =
  "select exists (select from pg_catalog.pg_extension where extname <> 'plpgsql')";

/** The served database's oid: the backend's own database. */
const SERVED_OID_SQL =
  "select oid from pg_catalog.pg_database where datname = pg_catalog.current_database()";

/** What the engine's own work runs through. */
export interface OwnWorkHost {
  readonly scheduler: EngineScheduler;
  /** The engine's runRaw: bytes run on the backend, the whole answer. */
  runRaw(bytes: Uint8Array): Promise<Uint8Array>;
  asBootstrapSuperuser(): Promise<void>;
  /** Reads the role and database catalogs again (postinit.ts). */
  refreshCatalogs(): Promise<void>;
  /** How long the cluster's work waits for the backend by default (pgts.engine_wait_timeout). */
  readonly waitTimeoutMs: number;
}

/** What the engine's start reads into and puts right (init). */
export interface EngineParts {
  readonly settings: Pick<BackendSettings, "init">;
  readonly catalogs: Pick<EngineCatalogs, "init">;
  readonly temp: Pick<TempSchemas, "dropLeftovers">;
  /** Puts the shipped extension bundles into the engine (extensions.ts). */
  loadExtensions(): Promise<void>;
}

function internalHolder(): Holder {
  return { pid: 0, activity: () => "doing the engine's own work" };
}

export class OwnWork {
  /**
   * The served database's oid, read at start: the backend's own database,
   * whose row the mirror of pg_database keeps (pg_database.ts).
   */
  servedOid: number | null = null;
  readonly #host: OwnWorkHost;
  #jobs = new Set<Promise<void>>();

  constructor(host: OwnWorkHost) {
    this.#host = host;
  }

  /**
   * The engine's start: reads what startups are checked against, and puts
   * right what the data directory needs (views, leftovers, extensions'
   * files). Every read is one statement of a single Query, a single round
   * trip to the engine's thread; what they show decides what else runs.
   */
  async init(parts: EngineParts): Promise<void> {
    await this.withEngine(async () => {
      startupTrace("executor open");
      // An extension created before this start needs its files (its
      // library) again, before anything else is planned: PostgreSQL 18's
      // planner asks every index access method with an operator family of
      // an equality it sees how to read it (bloom's handler for text = text,
      // in the very reads below), which loads that method's library.
      if ((await this.query(EXTENSIONS_CREATED_SQL))[0]?.[0] === "t") {
        await parts.loadExtensions();
      }
      const settingsEnd = BackendSettings.INIT_SQL.length;
      const catalogsEnd = settingsEnd + EngineCatalogs.INIT_SQL.length;
      const sets = await this.queries([
        ...BackendSettings.INIT_SQL,
        ...EngineCatalogs.INIT_SQL,
        STAT_ACTIVITY_INSTALLED_SQL,
        STAT_ARCHIVER_INSTALLED_SQL,
        TempSchemas.LEFTOVERS_SQL,
        SERVED_OID_SQL,
      ]);
      const [activity, archiver, leftovers = [], served] = sets.slice(catalogsEnd);
      parts.settings.init(sets.slice(0, settingsEnd));
      parts.catalogs.init(sets.slice(settingsEnd, catalogsEnd));
      this.servedOid = served?.[0]?.[0] == null ? null : Number(served[0][0]);
      startupTrace("engine: settings, roles and databases read");
      await this.installView(activity, STAT_ACTIVITY_SQL);
      await this.installView(archiver, STAT_ARCHIVER_SQL);
      startupTrace("engine: views checked");
      await parts.temp.dropLeftovers(leftovers);
      startupTrace("engine: leftovers dropped");
    }, Infinity);
  }

  /** Runs `fn` once the backend is free, holding it (waiting no longer than `timeoutMs`). */
  async withEngine<T>(fn: () => Promise<T>, timeoutMs: number): Promise<T> {
    const h = internalHolder();
    const scheduler = this.#host.scheduler;
    await scheduler.acquire(h, { timeoutMs });
    try {
      return await fn();
    } finally {
      scheduler.release(h);
    }
  }

  /** Runs `fn` when the backend is next free, never holding up the caller; close waits for it. */
  later(fn: () => Promise<void>): void {
    const job = this.withEngine(fn, Infinity).catch(() => {});
    this.#jobs.add(job);
    void job.finally(() => this.#jobs.delete(job));
  }

  /** The background jobs still to run, done. */
  async drain(): Promise<void> {
    await Promise.all([...this.#jobs]);
  }

  /** The rows of each statement, run as one simple-protocol Query; throws the first error. */
  async queries(sqls: readonly string[]): Promise<Array<Array<Array<string | null>>>> {
    const out = await this.#host.runRaw(fe.query(sqls.join(";\n")));
    const err = firstError(out);
    if (err !== null) throw new PgError(err.code, err.message);
    return resultSets(out);
  }

  async query(sql: string): Promise<Array<Array<string | null>>> {
    const out = await this.#host.runRaw(fe.query(sql));
    const err = firstError(out);
    if (err !== null) throw new PgError(err.code, err.message);
    return dataRows(out);
  }

  /**
   * Makes a catalog view read pgts's state instead of PGlite's one process
   * (pg_stat_activity: activity.ts; pg_stat_archiver: pgstat_archiver.ts),
   * once per cluster: `installed` is the answer of its check. A cluster
   * that refuses the DDL keeps PGlite's view, with a WARNING in the log.
   */
  async installView(
    installed: ReadonlyArray<Array<string | null>> | undefined,
    ddl: string,
  ): Promise<void> {
    if (installed?.[0]?.[0] === "t") return;
    // Views in pg_catalog take allow_system_table_mods (instance.ts).
    const err = firstError(
      await this.#host.runRaw(
        fe.query(`BEGIN; SET LOCAL allow_system_table_mods = on; ${ddl}; COMMIT`),
      ),
    );
    if (err === null) return;
    await this.#host.runRaw(fe.query("ROLLBACK"));
    ereport("WARNING", "could not install pgts's catalog views; the engine's own are in use", {
      category: "engine",
      detail: `${err.code}: ${err.message}`,
    });
  }

  /**
   * Runs SQL of the cluster's own as the bootstrap superuser, once the
   * backend is free (waiting no longer than `timeoutMs`), then reads the
   * role and database catalogs again: pg_database's mirror (pg_database.ts),
   * ALTER DATABASE … SET, a CHECKPOINT. `sql` gets the served database's
   * oid. `during` runs while the engine is still held (a copy of the
   * cluster's files after a CHECKPOINT). Throws the first error.
   */
  async runAsCluster(
    sql: (servedOid: number) => string,
    options: {
      timeoutMs?: number;
      during?: () => Promise<void> | void;
      /** Takes each NoticeResponse (a WARNING) the SQL raised, whole. */
      notices?: (msg: Uint8Array) => void;
      /** An error keeps its position in the SQL (the caller maps it to the client's text). */
      position?: boolean;
    } = {},
  ): Promise<void> {
    const host = this.#host;
    await this.withEngine(async () => {
      await host.asBootstrapSuperuser();
      if (this.servedOid === null) {
        const [row] = await this.query(SERVED_OID_SQL);
        if (row?.[0] != null) this.servedOid = Number(row[0]);
      }
      const text = sql(this.servedOid ?? 5);
      if (text !== "") {
        const out = await host.runRaw(fe.query(text));
        const [err] = messagesOf(out, BE.ErrorResponse);
        if (err !== undefined) {
          await host.runRaw(fe.query("ROLLBACK")).catch(() => {});
          // With its detail and hint; its position (in `text`) when asked for.
          const { position, context: _context, ...f } = parseErrorResponse(err.subarray(5));
          throw pgErrorFromFields(
            options.position === true && position !== undefined ? { ...f, position } : f,
          );
        }
        if (options.notices !== undefined) {
          for (const m of messagesOf(out, BE.NoticeResponse)) options.notices(m);
        }
      }
      await options.during?.();
      await host.refreshCatalogs();
    }, options.timeoutMs ?? host.waitTimeoutMs);
  }

  /** The first column of the first row of `sql`, run as the bootstrap superuser when the backend is free. */
  async queryAsCluster(sql: string): Promise<string | null> {
    return await this.withEngine(async () => {
      await this.#host.asBootstrapSuperuser();
      return (await this.query(sql))[0]?.[0] ?? null;
    }, this.#host.waitTimeoutMs);
  }
}

/** The messages of `type` in a backend answer, each whole. */
function messagesOf(out: Uint8Array, type: number): Uint8Array[] {
  const found: Uint8Array[] = [];
  for (let at = 0; at + 5 <= out.length;) {
    const end = at + 1 + readInt32(out, at + 1);
    if (out[at] === type) found.push(out.slice(at, end));
    at = end;
  }
  return found;
}
