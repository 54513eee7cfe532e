/**
 * One client's session on an upstream PostgreSQL: a dedicated upstream
 * connection (session mode), so transactions, prepared statements, SET,
 * LISTEN, temp tables and advisory locks are the upstream's own.
 *
 * `exec` writes the client's framed messages unchanged and relays the
 * upstream's bytes unchanged; nothing is re-framed or copied. It only walks
 * the message headers going by (`BackendScanner`) to know when the input is
 * answered: when every Query, Sync and FunctionCall sent has had its
 * ReadyForQuery, or when the upstream waits for COPY data (CopyInResponse,
 * CopyBothResponse), so that the backend can send it in the next `exec`.
 * `relay` is the same for the client's bytes as they were read, split
 * anywhere (the backend's pass-through); `FrontendScanner` then finds the
 * messages in them, and the Terminate that ends the relay.
 * Bytes that arrive with no `exec` in flight (NotificationResponse,
 * ParameterStatus, NoticeResponse) go to `onAsync`. The header walkers are
 * in scanners.ts.
 *
 * Where the session stands is one `SessionState`, changed only by
 * `#changeState` (pgbouncer's change_client_state): idle, active (answers
 * owed), copy_in (the upstream waits for CopyData), closing, ended.
 *
 * When the upstream goes away the session ends with the upstream's own
 * FATAL when it sent one (57P01 on a shutdown), else with 08006; the FATAL
 * goes through `onAsync`, then `onTerminate`, and later `exec` calls reject
 * with it. A length word no PostgreSQL sends ends the session the same way
 * (08P01); it never throws into the caller's event loop.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import type { EngineSession, TransactionStatus } from "../../core/engine/types.ts";
import type { Connection } from "../../core/adapter.ts";
import { FE, MessageWriter, writeErrorResponse } from "../../core/protocol/mod.ts";
import type { UpstreamConnect, UpstreamConnection } from "./connect.ts";
import { BackendScanner, FrontendScanner } from "./scanners.ts";
import { UpstreamCancel } from "./cancel.ts";
import type { UpstreamAddress, UpstreamTarget } from "./url.ts";

const CLOSE_TIMEOUT_MS = 5000;
const TERMINATE = new Uint8Array([FE.Terminate, 0, 0, 0, 4]);

type Out = (backend: Uint8Array) => void;

interface Pending {
  out: Out;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * Where a session stands. `owed`: ReadyForQuery messages still owed for
 * what was sent; `pending`: the exec (or relay) waiting for its answer.
 *
 * - idle: nothing owed, nothing waits.
 * - active: answers are owed; an exec waits for them (none when a COPY the
 *   upstream failed by itself left answers owed after its exec had
 *   resolved: they go to onAsync until the next exec). `owed` 0 with an
 *   exec waiting is the moment between its last ReadyForQuery and its
 *   resolution.
 * - copy_in: the upstream waits for CopyData (CopyInResponse or
 *   CopyBothResponse went by, no CopyDone or CopyFail yet); an exec waits
 *   only between that response and its resolution.
 * - closing: `close` sent Terminate (or hung up) and waits for the upstream
 *   to hang up; an exec still waiting is rejected when it has.
 * - ended: lost or closed, for `reason`; nothing leaves this state.
 */
type SessionState =
  | { readonly name: "idle" }
  | { readonly name: "active"; readonly owed: number; readonly pending: Pending | null }
  | { readonly name: "copy_in"; readonly owed: number; readonly pending: Pending | null }
  | { readonly name: "closing"; readonly pending: Pending | null }
  | { readonly name: "ended"; readonly reason: PgError };

const IDLE: SessionState = { name: "idle" };

function owedOf(s: SessionState): number {
  return s.name === "active" || s.name === "copy_in" ? s.owed : 0;
}

function pendingOf(s: SessionState): Pending | null {
  return s.name === "active" || s.name === "copy_in" || s.name === "closing" ? s.pending : null;
}

/** Answered as far as an exec is concerned: nothing owed, or the upstream waits for COPY data. */
function settled(s: SessionState): boolean {
  switch (s.name) {
    case "idle":
    case "copy_in":
      return true;
    case "active":
      return s.owed === 0;
    case "closing":
    case "ended":
      return false;
    default: {
      const never: never = s;
      return never;
    }
  }
}

/**
 * Where `owed` answers leave a session that is or is not in COPY IN, with
 * `pending` waiting: the one rule every input and answer goes through.
 */
function openState(copyIn: boolean, owed: number, pending: Pending | null): SessionState {
  if (copyIn) return { name: "copy_in", owed, pending };
  return owed === 0 && pending === null ? IDLE : { name: "active", owed, pending };
}

export class UpstreamSession implements EngineSession {
  onAsync: ((backend: Uint8Array) => void) | null = null;
  onTerminate: ((reason: PgError) => void) | null = null;

  #conn: Connection;
  #target: UpstreamTarget;
  #connect: UpstreamConnect;
  #address: UpstreamAddress;
  #upstreamPid: number;
  #key: Uint8Array;
  #status: TransactionStatus = "I";
  #state: SessionState = IDLE;
  #scanner: BackendScanner;
  #front = new FrontendScanner();
  #settledNow = () => settled(this.#state);
  #onEnd: () => void;
  /** Its cancels, and the client's bytes that must not overtake them. */
  #cancels: UpstreamCancel;

  constructor(upstream: UpstreamConnection, options: {
    target: UpstreamTarget;
    connect: UpstreamConnect;
    /** Called once when the session has ended, whoever ended it. */
    onEnd?: () => void;
  }) {
    this.#onEnd = options.onEnd ?? (() => {});
    this.#conn = upstream.conn;
    this.#target = options.target;
    this.#connect = options.connect;
    this.#address = upstream.address;
    this.#upstreamPid = upstream.pid;
    this.#key = upstream.key;
    this.#cancels = new UpstreamCancel(
      () => this.#connect(this.#address),
      (bytes) => {
        // Held bytes of a session that has since closed are not sent after its Terminate.
        const s = this.#state.name;
        if (s !== "closing" && s !== "ended") this.#conn.write(bytes);
      },
    );
    this.#scanner = new BackendScanner({
      onReadyForQuery: (status) => {
        this.#status = status;
        const s = this.#state;
        // A COPY that failed upstream ends at its ReadyForQuery too.
        if (s.name === "active" || s.name === "copy_in") {
          this.#changeState(openState(false, Math.max(0, s.owed - 1), s.pending));
        }
      },
      onCopyIn: () => {
        const s = this.#state;
        if (s.name === "idle" || s.name === "active" || s.name === "copy_in") {
          this.#changeState(openState(true, owedOf(s), pendingOf(s)));
        }
      },
    });
    this.#conn.onData = (chunk) => this.#receive(chunk);
    this.#conn.onClose = () => this.#lost(null);
    if (upstream.rest.length > 0) this.#receive(upstream.rest);
    this.#conn.resume();
  }

  /**
   * The one writer of the session's state. Not logged: it changes at every
   * statement of the relay, whose cost per round trip is the point of
   * session mode; the transitions are checked instead.
   */
  #changeState(next: SessionState): void {
    const from = this.#state.name;
    if (from === "ended" || (from === "closing" && next.name !== "ended")) {
      throw new TypeError(`Upstream session cannot go from ${from} to ${next.name}`);
    }
    this.#state = next;
  }

  get transactionStatus(): TransactionStatus {
    return this.#status;
  }

  /** The upstream backend's pid (pg_backend_pid() on the upstream). */
  get upstreamPid(): number {
    return this.#upstreamPid;
  }

  /** Why `exec` or `relay` cannot take input now, or null. */
  #refusal(): unknown {
    const s = this.#state;
    if (s.name === "ended") return s.reason;
    if (s.name === "closing") {
      return new PgError(ERRCODE.CONNECTION_DOES_NOT_EXIST, "session is closed");
    }
    return pendingOf(s) === null ? null : inFlight();
  }

  exec(frontend: Uint8Array, out: Out): Promise<void> {
    const refused = this.#refusal();
    if (refused !== null) return Promise.reject(refused);
    const front = this.#front;
    front.scan(frontend, this.#state.name === "copy_in");
    const copyIn = this.#state.name === "copy_in" && !front.endsCopy;
    const owed = owedOf(this.#state) + front.count;
    const done = copyIn || owed === 0;
    // The socket may keep a reference to what it could not write yet, and
    // the caller reuses its buffer once exec resolves: bytes the upstream
    // will not have read by then (COPY data, an unsynced tail) are copied.
    const tail = front.answeredEnd < frontend.length;
    this.#cancels.write(done || tail ? frontend.slice() : frontend);
    if (done) {
      this.#changeState(openState(copyIn, owed, null));
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      this.#changeState(openState(false, owed, { out, resolve, reject }));
    });
  }

  /**
   * The pass-through (see EngineSession.relay): the client's bytes as they
   * came, split anywhere. They are relayed up to a Terminate, unchanged and
   * uncopied (they are ours to keep); the scanner carries a partial message
   * over to the next call, and only a whole message counts as sent.
   */
  relay(client: Uint8Array, out: Out): Promise<boolean> {
    const refused = this.#refusal();
    if (refused !== null) return Promise.reject(refused);
    const front = this.#front;
    const end = front.scan(client, this.#state.name === "copy_in");
    const copyIn = this.#state.name === "copy_in" && !front.endsCopy;
    const owed = owedOf(this.#state) + front.count;
    const more = end === client.length;
    if (end > 0) this.#cancels.write(more ? client : client.subarray(0, end));
    if (copyIn || owed === 0) {
      this.#changeState(openState(copyIn, owed, null));
      return more ? RELAYED : TERMINATED;
    }
    return new Promise<boolean>((resolve, reject) => {
      this.#changeState(openState(false, owed, { out, resolve: () => resolve(more), reject }));
    });
  }

  #receive(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      const p = pendingOf(this.#state);
      if (p === null) {
        // Nothing asked for these: asynchronous messages, as a whole chunk.
        const failure = this.#scanner.scan(chunk, at, chunk.length);
        if (failure !== null) return this.#lost(failure);
        this.onAsync?.(chunk.subarray(at));
        return;
      }
      // Up to the message that settles the exec: that part is its answer.
      const end = this.#scanner.scanUntil(chunk, at, this.#settledNow);
      if (typeof end !== "number") return this.#lost(end);
      p.out(at === 0 && end === chunk.length ? chunk : chunk.subarray(at, end));
      at = end;
      const s = this.#state;
      if (settled(s)) {
        this.#changeState(openState(s.name === "copy_in", owedOf(s), null));
        p.resolve();
      }
    }
  }

  /**
   * The upstream is gone: closed (`failure` null), or sent bytes that cannot
   * be PostgreSQL's (`failure`; the rest of that chunk is dropped).
   */
  #lost(failure: PgError | null): void {
    const s = this.#state;
    if (s.name === "ended") return;
    let reason = failure ?? this.#scanner.lastFatal;
    const fatalSent = failure === null && reason !== null;
    if (reason === null) {
      reason = new PgError(
        ERRCODE.CONNECTION_FAILURE,
        "terminating connection because the upstream server closed the connection",
        { severity: "FATAL", detail: `The upstream server is "${this.#target.display}".` },
      );
    }
    const pending = pendingOf(s);
    this.#changeState({ name: "ended", reason });
    this.#conn.onData = null;
    this.#conn.onClose = null;
    this.#conn.destroy();
    if (s.name === "closing") {
      this.#settle(pending, reason);
      return;
    }
    // The upstream's own FATAL (57P01 on shutdown) was relayed already.
    const sink = pending?.out ?? this.onAsync;
    if (!fatalSent) {
      sink?.(MessageWriter.encode((w) => writeErrorResponse(w, reason)));
    }
    this.onTerminate?.(reason);
    this.#settle(pending, reason);
  }

  #settle(pending: Pending | null, reason: PgError): void {
    this.#onEnd();
    this.#onEnd = () => {};
    pending?.reject(reason);
  }

  /**
   * CancelRequest to the upstream backend, on a connection of its own, with
   * its key; what the client sends next waits until it landed (cancel.ts).
   */
  cancel(): void {
    if (this.#state.name === "ended") return;
    this.#cancels.send(this.#upstreamPid, this.#key);
  }

  close(): Promise<void> {
    const s = this.#state;
    if (s.name === "ended" || s.name === "closing") return Promise.resolve();
    this.#changeState({ name: "closing", pending: pendingOf(s) });
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        const now = this.#state;
        if (now.name !== "ended") {
          const reason = new PgError(ERRCODE.CONNECTION_DOES_NOT_EXIST, "session is closed");
          this.#changeState({ name: "ended", reason });
          this.#settle(pendingOf(now), reason);
        }
        resolve();
      };
      // An upstream that does not hang up is hung up on.
      const timer = setTimeout(() => {
        this.#conn.destroy();
        done();
      }, CLOSE_TIMEOUT_MS);
      // Before end(): a Bun socket reports its close from within end().
      this.#conn.onData = () => {};
      this.#conn.onClose = done;
      // Terminate: the upstream rolls back an open transaction and ends the
      // backend, as when a client leaves. After part of a relayed message it
      // would be read as the rest of it: the hang-up alone does the same.
      if (this.#front.atBoundary) this.#conn.write(TERMINATE);
      this.#conn.end();
    });
  }
}

const RELAYED = Promise.resolve(true);
const TERMINATED = Promise.resolve(false);

const inFlight = () => new TypeError("Only one exec may be in flight per session");
