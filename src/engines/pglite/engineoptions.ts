/**
 * What a PGlite engine (engine.ts) is opened with: the bounds of its
 * sessions' waits and holds, the idle-in-transaction default, what it does
 * once its backend is lost, and, when it serves one database of a
 * multi-database cluster, what it asks of the cluster (dbengines.ts
 * answers). The engine's type is a parameter, as the session's is in
 * sessionengine.ts, so that this module needs no engine.ts: engine.ts
 * names the forms it takes, `EngineOptions` and `EngineCluster`.
 *
 * Types only.
 */

import type { PgError } from "../../core/elog.ts";
import type { PgliteSession } from "./session.ts";
import type { SettingFiles } from "./settingsource.ts";

/** How an engine of type `E` is opened; every field has a default. */
export interface EngineOptions<E> {
  /** Longest wait for the engine before 55P03 (pgts.engine_wait_timeout); default 5000 ms. */
  readonly engineWaitTimeoutMs?: number;
  /**
   * pgts.engine_hold_timeout: a session holding the engine idle while another
   * waits for it is ended after this long (FATAL 25P03); default 2000 ms, 0 never.
   */
  readonly engineHoldTimeoutMs?: number;
  /** idle_in_transaction_session_timeout unless a session sets its own; default 0 (off), as in PostgreSQL. */
  readonly idleInTransactionSessionTimeoutMs?: number;
  /** idle_session_timeout unless a session sets its own (postgresql.conf or `-c`); default 0 (off). */
  readonly idleSessionTimeoutMs?: number;
  /** statement_timeout unless a session sets its own (the server's postgresql.conf or `-c`); default 0 (off). */
  readonly statementTimeoutMs?: number;
  /** lock_timeout unless a session sets its own; default 0 (off). */
  readonly lockTimeoutMs?: number;
  /** transaction_timeout unless a session sets its own; default 0 (off). */
  readonly transactionTimeoutMs?: number;
  /**
   * Called once when the backend is lost (markBroken): a PANIC, or a state
   * pgts cannot roll back. The engine child exits then, and the postmaster's
   * crash cycle reopens the cluster, which replays the WAL.
   */
  readonly onBroken?: (reason: string) => void;
  /** pg_reload_conf() ran: the postmaster should reload its configuration (its SIGHUP). */
  readonly onReloadConf?: () => void;
  /**
   * Set when the engine serves one database of a multi-database cluster
   * (dbengines.ts): CREATE, ALTER and DROP DATABASE are the cluster's to
   * carry out, and it learns when a session ends.
   */
  readonly cluster?: EngineCluster<E>;
}

/** What an engine of a multi-database cluster asks of the cluster. */
export interface EngineCluster<E> {
  /**
   * Carries out one CREATE/ALTER/DROP DATABASE statement for `session`,
   * which does not hold the engine; resolves with the answer's messages up
   * to (not including) ReadyForQuery, or rejects with the PgError to send.
   */
  databaseCommand(session: PgliteSession, sql: string): Promise<Uint8Array[]>;
  /** A session of this engine started. */
  sessionStarted(engine: E): void;
  /** A session of this engine ended. */
  sessionEnded(engine: E): void;
  /**
   * The sessions of the cluster's other databases. PostgreSQL's procarray
   * spans databases: pg_cancel_backend and pg_terminate_backend in one
   * database reach a backend of any other.
   */
  otherSessions(engine: E): Iterable<PgliteSession>;
  /** Bumped whenever a session of any database starts or ends. */
  sessionsVersion(): number;
  /** A transaction of this engine may have changed roles (pg_authid, pg_auth_members): show them everywhere. */
  rolesChanged(engine: E): void;
  /**
   * A wait for roles changed elsewhere to reach this engine (a role made in
   * one database is there for the next statement in any other, as in
   * PostgreSQL's shared catalog); null when none is on its way.
   */
  rolesArriving(engine: E): Promise<void> | null;
  /**
   * A transaction of this engine may have changed its database's
   * privileges (GRANT … ON DATABASE): show them in the other engines.
   */
  privilegesChanged(engine: E): void;
  /**
   * The counts of pg_shdepend rows naming each of `roles` (oids) in every
   * other database of the cluster that has any, database by database in
   * the list's order (pg_shdepend.ts): what DROP ROLE must not leave behind.
   */
  dependentsElsewhere(
    engine: E,
    roles: readonly number[],
  ): Promise<Array<readonly [string, Readonly<Record<string, number>>]>>;
  /**
   * The cluster's turn to change roles for `session`, whose input changes
   * them, and every earlier change copied to this engine (rolesturn.ts):
   * resolves null once both are so, or with the error to answer instead.
   * `holdsEngine`: the session holds the engine in a transaction block,
   * where no copy can reach it.
   */
  takeRolesTurn(engine: E, session: PgliteSession, holdsEngine: boolean): Promise<PgError | null>;
  /** `session`'s transaction (or session) ended: the turn to change roles goes on. */
  rolesTurnDone(session: PgliteSession): void;
}

/**
 * What a reload of the server's configuration changed for the engines:
 * the parameters' new values as postgresql.conf spells them (applied in
 * each backend, configreload.ts), and the session defaults pgts enforces
 * itself.
 */
export interface EngineReload {
  readonly settings: readonly (readonly [string, string])[];
  /** Every engine setting pgts's files set after the reload, with file and line (settingsource.ts). */
  readonly settingFiles: SettingFiles;
  readonly statementTimeoutMs: number;
  readonly lockTimeoutMs: number;
  readonly idleInTransactionSessionTimeoutMs: number;
  readonly idleSessionTimeoutMs: number;
  readonly transactionTimeoutMs: number;
}
