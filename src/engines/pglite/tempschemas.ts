/**
 * The engine's side of per-session temporary schemas; the backend's side,
 * the swap of namespace.c's statics, is tempnamespace.ts. This module owns
 * which session's pair the backend has, what PostgreSQL did to it during an
 * exec, and the engine's own SQL for pairs: the rename of a pair PostgreSQL
 * just made, the drop of an ended session's pair, the drop of what a
 * previous run left.
 *
 * PostgreSQL makes a session's pair itself, the first time the session
 * needs one, named pg_temp_N after the backend's MyProcNumber; the next
 * session that needed one would find pg_temp_N and empty it
 * (InitTempTableNamespace's cleanup of a leftover). So before the engine
 * serves anyone else, a new pair is renamed pg_temp_N_<session id>
 * (schemas named `pg_` take allow_system_table_mods, a superuser's
 * setting): temp-ness is by the `pg_temp_` prefix, and the N that atoi
 * reads after it stays the backend's.
 *
 * Its SQL runs READ WRITE: the backend still carries the settings of the
 * session that ran last, whose default_transaction_read_only may be on (a
 * read-only role's session makes temporary tables in a BEGIN READ WRITE).
 *
 * Must never attribute a pair to a session that did not make it, never
 * drop a pair while it is the backend's current one, and never send a pair
 * with an exec that does not need it (most execs carry only their bytes).
 */

import { ereport } from "../../core/elog.ts";
import type { ExecOptions, ExecResult } from "./executor.ts";
import { NO_TEMP, type TempPair } from "./tempnamespace.ts";
import { fe, firstError, quoteIdent } from "./wire.ts";

/** A session as far as its pair goes (session.ts's PgliteSession). */
export interface TempOwner {
  readonly id: number;
  readonly pid: number;
  /** Its pair, NO_TEMP until PostgreSQL makes one. */
  temp: TempPair;
  /** PostgreSQL just made `temp`, still named pg_temp_N. */
  tempUnnamed: boolean;
}

/** What the engine lends for its SQL on pairs. */
export interface TempSchemaHost {
  /** Runs bytes as pgts's own work, with the backend given `temp` (or left as it is). */
  runRaw(bytes: Uint8Array, temp?: TempPair): Promise<Uint8Array>;
  query(sql: string): Promise<Array<Array<string | null>>>;
  /** Makes the backend's identity the bootstrap superuser's (the next session is switched back). */
  asBootstrapSuperuser(): Promise<void>;
}

export class TempSchemas {
  readonly #host: TempSchemaHost;
  /** Why pairs are not per session (tempnamespace.ts), or null when they are. */
  readonly #shared: string | null;
  /** The session whose pair the backend has, if any. */
  #owner: TempOwner | null = null;
  /** The pair the backend has, as far as execs told; null after an exec that failed. */
  #carried: TempPair | null = null;

  constructor(host: TempSchemaHost, shared: string | null) {
    this.#host = host;
    this.#shared = shared;
  }

  /**
   * The options of an exec for session `s`, or for pgts's own work (`s`
   * undefined) with the backend given `temp` (or left as it is). From the
   * exec's start the backend has the session's pair, so what happens to
   * it is that session's, even when the exec fails and a rollback by
   * pgts's own work follows; a pair given for pgts's own work is no one's.
   */
  beforeExec(options: ExecOptions, s: TempOwner | undefined, temp?: TempPair): ExecOptions {
    const want = s !== undefined ? s.temp : temp;
    if (s !== undefined) this.#owner = s;
    else if (temp !== undefined) this.#owner = null;
    if (
      want === undefined || this.#shared !== null ||
      (this.#carried !== null && sameTemp(this.#carried, want))
    ) {
      return options;
    }
    // Carried from the exec's start: the exec after it (which may be
    // decided before this one ends, executor.ts) compares with this pair.
    this.#carried = want;
    return { ...options, temp: want };
  }

  /** The session the next exec's temporary objects are for (as of the last beforeExec). */
  get owner(): TempOwner | null {
    return this.#owner;
  }

  /**
   * After an exec: what PostgreSQL itself did to the backend's pair. It
   * made the first pair of `owner` (beforeExec's owner for that exec: the
   * session the exec ran for, or the one the backend last ran for), or a
   * rollback forgot a pair just made.
   */
  afterExec(result: ExecResult | undefined, owner: TempOwner | null): void {
    const span = result?.temp ?? null;
    if (span === null) return;
    this.#carried = span.after;
    if (owner === null || sameTemp(span.before, span.after)) return;
    if (!sameTemp(owner.temp, span.before)) return;
    owner.temp = span.after;
    owner.tempUnnamed = span.after[0] !== 0;
  }

  /**
   * An exec failed, or did not run: what the backend has is known again
   * at the next one's start.
   */
  execFailed(): void {
    this.#carried = null;
  }

  /** The temporary schemas there are: at start, what a previous run left (a crash, a kill). */
  static readonly LEFTOVERS_SQL = "select nspname from pg_catalog.pg_namespace" +
    " where nspname ~ '^pg_(toast_)?temp_[0-9]+(_[0-9]+)?$'";

  /** LEFTOVERS_SQL's rows, read at start before any session, go whole. */
  async dropLeftovers(left: ReadonlyArray<Array<string | null>>): Promise<void> {
    if (left.length === 0) return;
    await this.#host.runRaw(
      fe.query(`DROP SCHEMA ${left.map((r) => quoteIdent(r[0] ?? "")).join(", ")} CASCADE`),
      NO_TEMP,
    );
  }

  /** Renames the pair PostgreSQL just made for `s` (see the header). */
  async name(s: TempOwner): Promise<void> {
    s.tempUnnamed = false;
    const names = await this.#names(s.temp);
    const renames = names.filter((n) => /^pg_(toast_)?temp_[0-9]+$/.test(n))
      .map((n) => `ALTER SCHEMA ${quoteIdent(n)} RENAME TO ${quoteIdent(`${n}_${s.id}`)}`);
    if (renames.length === 0) return;
    await this.#host.asBootstrapSuperuser();
    const err = firstError(
      await this.#host.runRaw(
        fe.query(
          `BEGIN READ WRITE; SET LOCAL allow_system_table_mods = on; ${renames.join("; ")}; COMMIT`,
        ),
      ),
    );
    // Not expected (the superuser renames a schema it owns to a name no
    // session of this run has); the next session to need a pair would
    // empty this one.
    if (err !== null) {
      await this.#host.runRaw(fe.query("ROLLBACK"));
      ereport("WARNING", `could not rename temporary schema of process ${s.pid}: ${err.message}`, {
        category: "engine",
      });
    }
  }

  /**
   * An ended session's pair goes with it, as PostgreSQL empties its
   * backend's at exit; the names were the session's own, so the schemas go
   * too. Dropped with no pair current, so that the backend is never left
   * with a dropped one.
   */
  async drop(s: TempOwner): Promise<void> {
    if (this.#owner === s) this.#owner = null;
    const pair = s.temp;
    s.temp = NO_TEMP;
    s.tempUnnamed = false;
    if (pair[0] === 0) return;
    const names = await this.#names(pair);
    if (names.length === 0) return;
    await this.#host.asBootstrapSuperuser();
    const err = firstError(
      await this.#host.runRaw(
        fe.query(
          `BEGIN READ WRITE; DROP SCHEMA IF EXISTS ${
            names.map(quoteIdent).join(", ")
          } CASCADE; COMMIT`,
        ),
        NO_TEMP,
      ),
    );
    // Left for the next start, which drops leftovers.
    if (err !== null) {
      await this.#host.runRaw(fe.query("ROLLBACK"), NO_TEMP);
      ereport("WARNING", `could not drop temporary schema of process ${s.pid}: ${err.message}`, {
        category: "engine",
      });
    }
  }

  async #names(pair: TempPair): Promise<string[]> {
    return (await this.#host.query(
      `select nspname from pg_catalog.pg_namespace where oid in (${pair[0]}, ${pair[1]})`,
    )).map((r) => r[0] ?? "").filter((n) => n !== "");
  }
}

function sameTemp(a: TempPair, b: TempPair): boolean {
  return a[0] === b[0] && a[1] === b[1];
}
