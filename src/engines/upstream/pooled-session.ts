/**
 * One client's session in transaction mode: it holds an upstream
 * connection of its pool (pool.ts) from its first message until
 * ReadyForQuery 'I', then gives it back. What must survive the change of
 * connection travels with the client:
 *
 * - **Settings** (client-settings.ts): the client's settings map is put on
 *   a connection that carries another one, and read back from the upstream
 *   before the connection goes back, after input that may have changed it.
 * - **Prepared statements** (requests.ts): a named Parse is prepared under
 *   a pool-wide name shared by every client that prepares the same text;
 *   Bind and Describe are renamed, and the Parse is sent first, unseen by
 *   the client, on a connection that lacks it.
 * - **Pins.** LISTEN, SQL PREPARE, temporary tables, session advisory locks,
 *   WITH HOLD cursors and LOAD leave state on the connection itself: the
 *   client keeps that connection until it leaves (effects.ts); it is then
 *   reset with `server_reset_query` before it goes back. A client of a
 *   session-mode pool is pinned from the start (pgbouncer's session mode).
 *
 * The answer is relayed message by message as subarrays of what the
 * upstream sent, gathered per read, by the session's `AnswerRelay`
 * (answers.ts): a queue of the requests sent (one entry per Parse, Bind,
 * Describe, Execute, Close, Sync, Query, FunctionCall) says which answer
 * ends which request, so that pgts can drop the answers to what it added,
 * put its own answers in their place, and knows what the upstream skips
 * after an error (everything up to the next Sync). After each read the
 * relay hands back to `#settle`, which resolves the exec and gives the
 * connection back at ReadyForQuery 'I'.
 *
 * Where the session stands with its connection is one `SessionState`
 * (idle, waiting, active, closing, ended), changed only by `#changeState`
 * (pgbouncer's change_client_state); the exchange on the connection (the
 * relay's request queue, what is owed, COPY IN, the exec waiting) is its
 * data.
 *
 * A cancel goes to the upstream backend that runs the client's statement
 * (or ends its wait for a connection, 57014). A client that leaves
 * mid-transaction has its statement cancelled, the transaction rolled back
 * and the connection returned clean (server-reset.ts); a connection that
 * cannot be brought back to idle is closed instead.
 */

import { ereport, ERRCODE, PgError } from "../../core/elog.ts";
import type {
  EngineSession,
  ParameterStatusList,
  SessionStartup,
  TransactionStatus,
} from "../../core/engine/types.ts";
import { describesOnly } from "../../core/protocol/pipeline.ts";
import {
  afterSync,
  concat,
  errorResponse,
  type Frame,
  readyForQuery,
  splitFrames,
} from "../pglite/wire.ts";
import { readOnlyInput, type SqlEffects } from "./effects.ts";
import { ClientSettings } from "./client-settings.ts";
import type { Pool, Pooler, SharedStatement } from "./pool-objects.ts";
import {
  answerPrepareOnly,
  answerWithError,
  asError,
  HIDDEN_PARSE,
  OWN_SYNC,
  rewriteInput,
  unnamedUse,
} from "./requests.ts";
import { AnswerRelay, type Out } from "./answers.ts";
import type { PoolServer } from "./server.ts";
import { cleanAfterClient } from "./server-reset.ts";

/** Distinct startup-parameter sets remembered per pool. */
const MAX_LOGINS = 256;

interface Pending {
  out: Out;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * Where a session stands with its connection:
 * - idle: it holds none (between transactions; pinned clients never
 *   return here once they have one).
 * - waiting: an exec waits for a connection of its pool (`acquire`), then
 *   for the client's settings to be put on it.
 * - active: it holds `server`, of `pool` (its own or the read-only one).
 * - closing: the client left; `server` (if it still holds one) is being
 *   brought back to idle, then goes back to `pool` or is closed.
 * - ended: by the client, the upstream's loss or KILL, for `reason`;
 *   nothing leaves this state.
 */
type SessionState =
  | { readonly name: "idle" }
  | { readonly name: "waiting"; readonly acquire: { cancel(reason: PgError): void } }
  | { readonly name: "active"; readonly server: PoolServer; readonly pool: Pool }
  | { readonly name: "closing"; readonly server: PoolServer | null; readonly pool: Pool }
  | { readonly name: "ended"; readonly reason: PgError };

const IDLE: SessionState = { name: "idle" };
/** The wait of a session that found a free connection and puts its settings on it. */
const NOT_WAITING = { cancel(): void {} };

let nextSessionId = 1;

export class PooledSession implements EngineSession {
  onAsync: Out | null = null;
  onTerminate: ((reason: PgError) => void) | null = null;
  readonly id = nextSessionId++;
  readonly connectedAt = Date.now();
  /** When its last input came, for the console. */
  requestAt = Date.now();

  #engine: Pooler;
  #pool: Pool;
  #startup: SessionStartup;
  #onEnd: () => void;
  #settings: ClientSettings;
  /** The client's protocol statements: its name → the pool's statement. */
  #statements = new Map<string, SharedStatement>();

  #state: SessionState = IDLE;
  /** Why the client keeps its connection for good; null while it does not. */
  #pinned: string | null = null;
  /** The request queue and the upstream's answer (answers.ts): the held connection's handler. */
  #answers: AnswerRelay;
  #pending: Pending | null = null;
  /** Called once nothing is owed and no request is left (the client left mid-input). */
  #onDrained: (() => void) | null = null;
  /** close()'s promise: once the client has left, nothing more is relayed to it. */
  #leaving: Promise<void> | null = null;
  /**
   * The Parse of the client's unnamed statement from a describe-only input
   * (core/protocol's describesOnly), whose connection went back: put back
   * first wherever an input binds or describes it before parsing it.
   */
  #unnamedParse: Uint8Array | null = null;
  /** A describe-only input failed: the client's messages up to its Sync are skipped. */
  #skipToSync = false;

  constructor(engine: Pooler, options: {
    pool: Pool;
    startup: SessionStartup;
    onEnd: () => void;
  }) {
    this.#engine = engine;
    this.#pool = options.pool;
    this.#startup = options.startup;
    this.#onEnd = options.onEnd;
    if (this.#pool.mode === "session") this.#pinned = "pool_mode is session";
    this.#settings = new ClientSettings({
      // SET SESSION AUTHORIZATION back to the connection's own login role is
      // always allowed: the URL's user, or the role itself when it logged in.
      loginRole: () => this.#pool.login?.user ?? this.#engine.target.user,
      pid: options.startup.pid,
    });
    this.#answers = new AnswerRelay(this.#pool, {
      sink: () => this.#sink(),
      server: () => this.#server,
      settle: () => this.#settle(),
      lost: (reason) => this.#end(reason, true),
    });
  }

  get transactionStatus(): TransactionStatus {
    return this.#answers.status;
  }

  /**
   * The one writer of the session's state. Not logged: it changes at
   * every transaction of every client; the transitions are checked.
   */
  #changeState(next: SessionState): void {
    const from = this.#state.name;
    if (
      from === "ended" || (from === "closing" && next.name !== "closing" && next.name !== "ended")
    ) {
      throw new TypeError(`Pooled session cannot go from ${from} to ${next.name}`);
    }
    this.#state = next;
  }

  /** The connection the session holds, if it does. */
  get #server(): PoolServer | null {
    const s = this.#state;
    return s.name === "active" || s.name === "closing" ? s.server : null;
  }

  /** The pool the held connection came from: the session's own, or its read-only companion. */
  get #serverPool(): Pool {
    const s = this.#state;
    return s.name === "active" || s.name === "closing" ? s.pool : this.#pool;
  }

  /** Why the session ended, or null. */
  get #ended(): PgError | null {
    return this.#state.name === "ended" ? this.#state.reason : null;
  }

  /** What the console shows of it. */
  get info(): {
    startup: SessionStartup;
    pool: Pool;
    state: "active" | "waiting" | "idle";
    server: PoolServer | null;
    statements: number;
    applicationName: string;
  } {
    return {
      startup: this.#startup,
      pool: this.#serverPool,
      state: this.#state.name === "waiting" ? "waiting" : this.#server !== null ? "active" : "idle",
      server: this.#server,
      statements: this.#statements.size,
      applicationName: this.#settings.map.get("application_name") ?? "",
    };
  }

  /** The database the client logged in to. */
  get database(): string {
    return this.#pool.database;
  }

  /** An input is being answered, or waits for a connection (SUSPEND waits for none). */
  get inFlight(): boolean {
    return this.#pending !== null || this.#state.name === "waiting";
  }

  /**
   * Ends the session from the pool's side (KILL db): the client gets
   * `reason` as a FATAL and its backend closes it; the connection it held
   * is closed, its state unknown.
   */
  terminate(reason: PgError): void {
    const s = this.#state;
    const server = this.#server;
    const pool = this.#serverPool;
    this.#end(reason, true);
    if (s.name === "waiting") s.acquire.cancel(reason);
    if (server !== null) {
      server.handler = null;
      this.#engine.discard(pool, server);
    }
  }

  /** The upstream backend's pid while the session holds a connection. */
  get upstreamPid(): number | null {
    return this.#server?.pid ?? null;
  }

  /**
   * Checks the client's startup settings on a connection (a bad one ends
   * the login, as in PostgreSQL) and returns the ParameterStatus list the
   * client starts with.
   */
  async start(): Promise<ParameterStatusList> {
    // The same startup parameters give the same map: checked once per pool,
    // so that a login needs no connection (pgbench -C logs in between the
    // transactions of the clients of its thread).
    const key = JSON.stringify(this.#startup.params);
    const known = this.#pool.logins.get(key);
    if (known !== undefined) {
      this.#settings.adopt(known.map);
      return known.reported;
    }
    const server = await this.#engine.acquire(this.#pool).promise;
    try {
      // A fresh connection's map, not what this one carries for its last client.
      await this.#settings.fromStartup(server, this.#pool.baseline, this.#startup.params);
      const reported = [...server.reported];
      if (this.#pool.logins.size < MAX_LOGINS) {
        this.#pool.logins.set(key, { map: this.#settings.map, reported });
      }
      return reported;
    } finally {
      this.#engine.release(this.#pool, server);
    }
  }

  /**
   * Runs the client's input. Synchronous up to the write upstream when the
   * session holds a connection, or finds a free one that carries its
   * settings already (most transactions): the answer's promise is the only
   * one made. A wait (SUSPEND, no free connection, settings to put on the
   * connection) goes by #beginWaiting.
   */
  exec(frontend: Uint8Array, out: Out): Promise<void> {
    try {
      if (this.#ended !== null) throw this.#ended;
      if (this.#pending !== null) throw new TypeError("Only one exec may be in flight per session");
      if (this.#engine.running !== null) return this.#execSuspended(frontend, out);
      let frames = splitFrames(frontend);
      if (frames === null) throw framingError();
      if (this.#skipToSync) {
        const rest = this.#skipped(frontend, frames, out);
        if (rest === null) return Promise.resolve();
        ({ input: frontend, frames } = rest);
      }
      if (this.#server !== null) return this.#send(frontend, frames, out);
      return this.#begin(frontend, frames, out);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** SUSPEND: nothing goes upstream until RESUME. */
  async #execSuspended(frontend: Uint8Array, out: Out): Promise<void> {
    // Copied: the caller reuses its buffer once exec returns.
    let input: Uint8Array = frontend.slice();
    await this.#engine.running;
    if (this.#ended !== null) throw this.#ended;
    let frames = splitFrames(input);
    if (frames === null) throw framingError();
    if (this.#skipToSync) {
      const rest = this.#skipped(input, frames, out);
      if (rest === null) return;
      ({ input, frames } = rest);
    }
    if (this.#server !== null) return await this.#send(input, frames, out);
    return await this.#begin(input, frames, out);
  }

  /**
   * After a describe-only input failed, the client's messages up to its
   * Sync are skipped, as PostgreSQL skips them after an error, and its
   * Sync is answered; the rest of the input, or null when none is left.
   */
  #skipped(
    input: Uint8Array,
    frames: Frame[],
    out: Out,
  ): { input: Uint8Array; frames: Frame[] } | null {
    const rest = afterSync(input, frames);
    if (rest === null) return null;
    this.#skipToSync = false;
    out(readyForQuery(this.transactionStatus));
    return rest.frames.length === 0 ? null : rest;
  }

  /** The first input of a transaction: a connection for it, then #send. */
  #begin(frontend: Uint8Array, frames: Frame[], out: Out): Promise<void> {
    if (!this.#pool.hasFree) {
      // Preparing never waits in PostgreSQL (requests.ts, answerPrepareOnly).
      const answer = answerPrepareOnly(frontend, frames, this.#statements, this.#engine);
      if (answer !== null) {
        out(answer);
        return Promise.resolve();
      }
    }
    const pool = this.#pinned === null && this.#engine.routesReads &&
        readOnlyInput(frontend, frames, this.#settings.map)
      ? this.#engine.readPoolFor(this.#pool)
      : this.#pool;
    const free = this.#engine.acquireNow(pool);
    if (free !== null && this.#settings.carriedBy(free)) {
      this.#hold(free, pool);
      return this.#send(frontend, frames, out, true);
    }
    // Copied: the caller reuses its buffer once exec returns, and the
    // wait below may outlast that.
    return this.#beginWaiting(frontend.slice(), frames, out, { pool, free });
  }

  /**
   * #begin's slow path: waits for a connection of `pool` (unless `free` is
   * one already), then puts the client's settings on it.
   */
  async #beginWaiting(
    input: Uint8Array,
    frames: Frame[],
    out: Out,
    { pool, free }: { pool: Pool; free: PoolServer | null },
  ): Promise<void> {
    let server: PoolServer;
    if (free !== null) {
      this.#changeState({ name: "waiting", acquire: NOT_WAITING });
      server = free;
    } else {
      try {
        const acquire = this.#engine.acquire(pool);
        this.#changeState({ name: "waiting", acquire });
        server = await acquire.promise;
      } catch (e) {
        if (this.#ended !== null) throw this.#ended;
        this.#changeState(IDLE);
        out(answerWithError(frames, asError(e)));
        return;
      }
      if (this.#ended !== null) {
        this.#engine.release(pool, server);
        throw this.#ended;
      }
    }
    let refused: PgError | null;
    try {
      refused = await this.#settings.switchTo(server);
    } catch (e) {
      refused = asError(e);
    }
    if (this.#ended !== null) {
      this.#engine.release(pool, server);
      throw this.#ended;
    }
    if (refused !== null) {
      this.#changeState(IDLE);
      this.#engine.release(pool, server);
      out(answerWithError(frames, refused));
      return;
    }
    this.#hold(server, pool);
    return await this.#send(input, frames, out, true);
  }

  /** The session holds `server` now: its answers come to the session's relay. */
  #hold(server: PoolServer, pool: Pool): void {
    this.#changeState({ name: "active", server, pool });
    server.handler = this.#answers;
    server.client = this;
  }

  /**
   * Renames, adds and answers what it must (requests.ts), writes the rest
   * upstream. A describe-only input that took the connection (`fromIdle`)
   * ends with a Sync of pgts's own, so that the connection goes back at its
   * ReadyForQuery.
   */
  #send(input: Uint8Array, frames: Frame[], out: Out, fromIdle = false): Promise<void> {
    const server = this.#server!;
    this.requestAt = Date.now();
    this.#pool.received += input.length;
    const ownSync = fromIdle && this.#pinned === null && describesOnly(frames);
    const { parts, requests, endsCopy } = rewriteInput(input, frames, {
      server,
      statements: this.#statements,
      engine: this.#engine,
      note: (e, sql) => this.#note(e, sql),
    });
    if (this.#unnamedParse !== null || ownSync) {
      const unnamed = unnamedUse(input, frames);
      if (unnamed.usesFirst && this.#unnamedParse !== null) {
        parts.unshift(this.#unnamedParse);
        requests.unshift(HIDDEN_PARSE);
      }
      if (ownSync && unnamed.parse !== null) this.#unnamedParse = unnamed.parse.slice();
      else if (unnamed.parse !== null || unnamed.drops) this.#unnamedParse = null;
    }
    if (ownSync) {
      parts.push(OWN_SYNC.bytes);
      requests.push(OWN_SYNC.request);
    }
    const answers = this.#answers;
    if (endsCopy) answers.endCopy();
    for (const r of requests) answers.push(r);
    if (parts.length > 0) server.write(concat(parts.length === 1 ? [parts[0]!.slice()] : parts));
    const answered = this.#answered(out);
    if (!ownSync) return answered;
    const errors = answers.extendedErrors;
    return answered.then(() => {
      if (answers.extendedErrors === errors) return;
      this.#skipToSync = true;
      this.#unnamedParse = null;
    });
  }

  /** The exec's promise: settled by #settle once its input is answered. */
  #answered(out: Out): Promise<void> {
    const answers = this.#answers;
    return new Promise<void>((resolve, reject) => {
      this.#pending = { out, resolve, reject };
      // Requests pgts answers itself at the head of the queue, and inputs
      // that owe nothing (Parse+Flush, CopyData), settle now.
      answers.answerSynthetic();
      answers.flush();
      this.#settle();
    });
  }

  /** Notes what a statement's text does to the session (effects.ts). */
  #note(e: SqlEffects, sql: string | null): void {
    if (e.settings) this.#settings.note(sql);
    if (e.pin !== null && this.#pinned === null) {
      this.#pinned = e.pin;
      ereport("DEBUG1", `process ${this.#startup.pid} keeps its upstream connection: ${e.pin}`, {
        category: "pool",
      });
    }
    if (e.dropsStatements) {
      this.#statements.clear();
      this.#server?.prepared.clear();
    }
  }

  /** Where the answer goes now: nowhere once the client left. */
  #sink(): Out | null {
    if (this.#leaving !== null) return null;
    return this.#pending?.out ?? this.onAsync;
  }

  /** After a read: resolves the exec whose input is answered, and gives the connection back at 'I'. */
  #settle(): void {
    const answers = this.#answers;
    if (answers.owed > 0 && !answers.copyIn) return;
    const drained = answers.drained;
    if (drained && this.#onDrained !== null) {
      const w = this.#onDrained;
      this.#onDrained = null;
      w();
    }
    const idle = drained && !answers.copyIn && answers.status === "I";
    const p = this.#pending;
    if (p === null) return;
    const server = this.#server;
    if (!idle || server === null || this.#pinned !== null || this.#leaving !== null) {
      this.#pending = null;
      p.resolve();
      return;
    }
    if (!this.#settings.dirty) {
      this.#pending = null;
      this.#giveBack(server);
      p.resolve();
      return;
    }
    // The input may have changed settings: read the map back first. The
    // exec stays pending, so no other input of this client comes between.
    this.#settings.dirty = false;
    server.handler = null;
    this.#settings.readBack(server).then(() => {
      this.#pending = null;
      // A client that left meanwhile has #leave give it back.
      if (this.#server === server && this.#state.name === "active") this.#giveBack(server);
      p.resolve();
    }, (e) => {
      this.#pending = null;
      if (this.#server === server && this.#state.name === "active") {
        const pool = this.#serverPool;
        this.#changeState(IDLE);
        this.#engine.discard(pool, server);
      }
      p.reject(e);
    });
  }

  #giveBack(server: PoolServer): void {
    const pool = this.#serverPool;
    this.#changeState(IDLE);
    this.#engine.release(pool, server);
  }

  /** CancelRequest to the upstream backend running the client's statement, or the end of its wait. */
  cancel(): void {
    const s = this.#state;
    if (s.name === "waiting") {
      s.acquire.cancel(
        new PgError(ERRCODE.QUERY_CANCELED, "canceling statement due to user request"),
      );
      return;
    }
    if (this.#server !== null && this.#answers.owed > 0) this.#server.cancel();
  }

  close(): Promise<void> {
    this.#leaving ??= this.#leave();
    return this.#leaving;
  }

  /**
   * The client is gone: its wait is ended; a statement it left running is
   * cancelled, its transaction (or COPY) rolled back, and the connection
   * goes back clean, reset if it was pinned. Bounded: a connection that does
   * not come back to idle in time is closed.
   */
  async #leave(): Promise<void> {
    const s = this.#state;
    if (s.name === "waiting") {
      s.acquire.cancel(new PgError(ERRCODE.CONNECTION_FAILURE, "the client left"));
    }
    const server = this.#server;
    const pool = this.#serverPool;
    if (server === null) {
      this.#end(null, false);
      return;
    }
    this.#changeState({ name: "closing", server, pool });
    try {
      const clean = await cleanAfterClient(server, {
        answers: this.#answers,
        pinned: () => this.#pinned !== null,
        resetQuery: () => this.#engine.settings.serverResetQuery,
        drained: () => new Promise<void>((resolve) => (this.#onDrained = resolve)),
      });
      if (clean === "timeout" || server.closed) throw new Error("timeout");
      this.#changeState({ name: "closing", server: null, pool });
      this.#engine.release(pool, server);
    } catch {
      if (this.#server === server) {
        this.#changeState({ name: "closing", server: null, pool });
        this.#engine.discard(pool, server);
      }
    } finally {
      this.#end(null, false);
    }
  }

  /** The session is over: by the client (`reason` null) or by the upstream's loss. */
  #end(reason: PgError | null, notify: boolean): void {
    if (this.#ended !== null) return;
    this.#changeState({
      name: "ended",
      reason: reason ?? new PgError(ERRCODE.CONNECTION_DOES_NOT_EXIST, "session is closed"),
    });
    this.#onEnd();
    const p = this.#pending;
    this.#pending = null;
    if (notify && reason !== null) {
      // The upstream's own FATAL went by already if it sent one.
      const sink = p?.out ?? this.onAsync;
      if (!this.#answers.fatalSent) sink?.(errorResponse(reason));
      this.onTerminate?.(reason);
    }
    p?.reject(this.#ended);
  }
}

function framingError(): PgError {
  return new PgError(ERRCODE.PROTOCOL_VIOLATION, "invalid frontend message framing", {
    severity: "FATAL",
  });
}
