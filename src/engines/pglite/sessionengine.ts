/**
 * What a session asks of its engine: session.ts's PgliteSession runs on
 * anything that has these, and engine.ts's PgliteEngine is the one that
 * does. The session's type is a parameter, so that neither this module
 * nor session.ts needs engine.ts (nor this module session.ts): no import
 * circle between the engine and its sessions.
 *
 * Types only; every member is used by the session on its input's path.
 */

import type { PgError } from "../../core/elog.ts";
import type { ParameterStatusList } from "../../core/engine/types.ts";
import type { RoleGraph } from "./acl.ts";
import type { ActivityRow, BackendSignal, StatActivityView } from "./backends.ts";
import type { ExecOptions, ExecResult, RawExecutor } from "./executor.ts";
import type { ListenRegistry } from "./notify.ts";
import type { EngineScheduler } from "./scheduler.ts";

/** What a session of type `S` asks of its engine. */
export interface SessionEngine<S> {
  readonly executor: Pick<RawExecutor, "wal" | "interrupt" | "copyFeed" | "pipelines">;
  readonly scheduler: EngineScheduler;
  readonly listeners: Pick<ListenRegistry, "route">;
  readonly options: {
    readonly engineWaitTimeoutMs: number;
    readonly engineHoldTimeoutMs: number;
    readonly idleInTransactionSessionTimeoutMs: number;
    readonly idleSessionTimeoutMs: number;
    readonly statementTimeoutMs: number;
    readonly lockTimeoutMs: number;
    readonly transactionTimeoutMs: number;
  };
  /** The cluster that carries out CREATE/ALTER/DROP DATABASE, in a multi-database cluster. */
  readonly cluster: {
    databaseCommand(session: S, sql: string): Promise<Uint8Array[]>;
  } | null;
  readonly database: string;
  /** Why temporary objects are shared by every session, or null. */
  readonly tempShared: string | null;
  readonly roleGraph: RoleGraph;
  /** The holder has committed role or database DDL that the engine is reading back. */
  readonly catalogsSettling: boolean;
  /**
   * A DROP ROLE of `roles` refused for what depends on one of them in
   * another database of the cluster (pg_shdepend.ts); null: not refused.
   * `ownLines`: the engine's own database's dependencies may be read (the
   * session does not hold the engine).
   */
  dropRoleRefusal(roles: readonly string[], ownLines: boolean): Promise<PgError | null>;
  /**
   * The cluster's turn to change roles for `s`, whose input changes them,
   * with every earlier change copied here (rolesturn.ts); the error to
   * answer instead, or null. `holdsEngine`: `s` holds the engine in a block.
   */
  takeRolesTurn(s: S, holdsEngine: boolean): Promise<PgError | null>;
  /** `s`'s transaction ended: the turn to change roles, if it had it, goes on. */
  rolesTurnDone(s: S): void;
  /** What a statement waits for first: roles changed in another database, on their way here (null: none). */
  rolesArriving(): Promise<void> | null;
  /** The session whose unnamed statement the backend holds, if known. */
  unnamedOwner: S | null;
  /** The GUC_REPORT parameters' values on the backend, a new list after each change. */
  readonly reportedValues: ParameterStatusList | null;
  fixedSetting(name: string): readonly [string, string] | undefined;
  /** pg_stat_activity's oid and the databases' (offengine.ts); null: not read. */
  readonly statActivityView: StatActivityView | null;
  activityRows(): ActivityRow[];
  signalBackends(signals: readonly BackendSignal[]): void;
  clusterSession(pid: number): S | undefined;
  holdCursorsOfOthers(s: S): number;
  noteCustomSetting(name: string): void;
  carriesSettingsOf(s: S): boolean;
  prepareFor(s: S): Promise<PgError[]>;
  runSpecial(
    s: S,
    kind: "discard all" | "deallocate all",
    out: (b: Uint8Array) => void,
  ): Promise<boolean>;
  /** `more.clockAtMs`: the wall clock Postgres reads during the exec (InstanceExecOptions). */
  runRaw(
    bytes: Uint8Array,
    as?: S,
    temp?: undefined,
    more?: { clockAtMs?: number },
  ): Promise<Uint8Array>;
  exec(
    bytes: Uint8Array,
    onData: (chunk: Uint8Array) => void | Promise<void>,
    options: ExecOptions,
    s?: S,
  ): Promise<ExecResult>;
  backendsForExec(): ExecOptions["backends"] | undefined;
  loadExtensionsFor(needed: boolean): boolean;
  hasWorkAfterTransaction(s: S): boolean;
  afterTransaction(s: S): Promise<void>;
  abortOpenWork(s: S): Promise<boolean>;
  markBroken(reason: string): void;
  endSession(s: S): Promise<void>;
}
