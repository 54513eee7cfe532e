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
 * ParameterStatus, NoticeResponse) go to `onAsync`.
 *
 * When the upstream goes away the session ends with the upstream's own
 * FATAL when it sent one (57P01 on a shutdown), else with 08006; the FATAL
 * goes through `onAsync`, then `onTerminate`, and later `exec` calls reject
 * with it. A length word no PostgreSQL sends ends the session the same way
 * (08P01); it never throws into the caller's event loop.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import type { EngineSession, TransactionStatus } from "../../core/engine/types.ts";
import type { Connection } from "../../core/postmaster/launch.ts";
import {
  BE,
  FE,
  MessageWriter,
  parseErrorResponse,
  pgErrorFromFields,
  writeCancelRequest,
  writeErrorResponse,
} from "../../core/protocol/mod.ts";
import type { UpstreamConnect, UpstreamConnection } from "./connect.ts";
import type { UpstreamAddress, UpstreamTarget } from "./url.ts";

/** Longest ErrorResponse body kept to learn a FATAL's code; longer ones are relayed only. */
const MAX_ERROR_CAPTURE = 16384;
/** PostgreSQL's own limit on a message it sends (PQ_LARGE_MESSAGE_LIMIT is for input). */
const MAX_BACKEND_MESSAGE = 0x7fffffff;
const CLOSE_TIMEOUT_MS = 5000;
const TERMINATE = new Uint8Array([FE.Terminate, 0, 0, 0, 4]);

type Out = (backend: Uint8Array) => void;

interface Pending {
  out: Out;
  resolve: () => void;
  reject: (e: unknown) => void;
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
  /** ReadyForQuery messages still owed for what was sent. */
  #owed = 0;
  /** The upstream waits for CopyData (CopyInResponse/CopyBothResponse seen, no CopyDone/CopyFail yet). */
  #copyIn = false;
  #pending: Pending | null = null;
  #scanner: BackendScanner;
  #front = new FrontendScanner();
  #settledNow = () => this.#settled();
  #ended: PgError | null = null;
  #closing = false;
  #onEnd: () => void;

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
    this.#scanner = new BackendScanner({
      onReadyForQuery: (status) => {
        this.#status = status;
        // A COPY that failed upstream ends at its ReadyForQuery too.
        this.#copyIn = false;
        if (this.#owed > 0) this.#owed--;
      },
      onCopyIn: () => (this.#copyIn = true),
    });
    this.#conn.onData = (chunk) => this.#receive(chunk);
    this.#conn.onClose = () => this.#lost(null);
    if (upstream.rest.length > 0) this.#receive(upstream.rest);
    this.#conn.resume();
  }

  get transactionStatus(): TransactionStatus {
    return this.#status;
  }

  /** The upstream backend's pid (pg_backend_pid() on the upstream). */
  get upstreamPid(): number {
    return this.#upstreamPid;
  }

  exec(frontend: Uint8Array, out: Out): Promise<void> {
    if (this.#ended !== null) return Promise.reject(this.#ended);
    if (this.#pending !== null) return Promise.reject(inFlight());
    const front = this.#front;
    front.scan(frontend, this.#copyIn);
    this.#sent(front);
    const settled = this.#settled();
    // The socket may keep a reference to what it could not write yet, and
    // the caller reuses its buffer once exec resolves: bytes the upstream
    // will not have read by then (COPY data, an unsynced tail) are copied.
    const tail = front.answeredEnd < frontend.length;
    this.#conn.write(settled || tail ? frontend.slice() : frontend);
    if (settled) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#pending = { out, resolve, reject };
    });
  }

  /**
   * The pass-through (see EngineSession.relay): the client's bytes as they
   * came, split anywhere. They are relayed up to a Terminate, unchanged and
   * uncopied (they are ours to keep); the scanner carries a partial message
   * over to the next call, and only a whole message counts as sent.
   */
  relay(client: Uint8Array, out: Out): Promise<boolean> {
    if (this.#ended !== null) return Promise.reject(this.#ended);
    if (this.#pending !== null) return Promise.reject(inFlight());
    const front = this.#front;
    const end = front.scan(client, this.#copyIn);
    this.#sent(front);
    const more = end === client.length;
    if (end > 0) this.#conn.write(more ? client : client.subarray(0, end));
    if (this.#settled()) return more ? RELAYED : TERMINATED;
    return new Promise<boolean>((resolve, reject) => {
      this.#pending = { out, resolve: () => resolve(more), reject };
    });
  }

  /** What the scanned input owes is owed. */
  #sent(front: FrontendScanner): void {
    if (front.endsCopy) this.#copyIn = false;
    this.#owed += front.count;
  }

  /** Nothing more is owed for the input so far, or the upstream waits for COPY data. */
  #settled(): boolean {
    return this.#owed === 0 || this.#copyIn;
  }

  #receive(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      const p = this.#pending;
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
      if (this.#settled()) {
        this.#pending = null;
        p.resolve();
      }
    }
  }

  /**
   * The upstream is gone: closed (`failure` null), or sent bytes that cannot
   * be PostgreSQL's (`failure`; the rest of that chunk is dropped).
   */
  #lost(failure: PgError | null): void {
    if (this.#ended !== null) return;
    let reason = failure ?? this.#scanner.lastFatal;
    const fatalSent = failure === null && reason !== null;
    if (reason === null) {
      reason = new PgError(
        ERRCODE.CONNECTION_FAILURE,
        "terminating connection because the upstream server closed the connection",
        { severity: "FATAL", detail: `The upstream server is "${this.#target.display}".` },
      );
    }
    this.#ended = reason;
    this.#conn.onData = null;
    this.#conn.onClose = null;
    this.#conn.destroy();
    if (this.#closing) {
      this.#settle();
      return;
    }
    // The upstream's own FATAL (57P01 on shutdown) was relayed already.
    const sink = this.#pending?.out ?? this.onAsync;
    if (!fatalSent) {
      sink?.(MessageWriter.encode((w) => writeErrorResponse(w, reason)));
    }
    this.onTerminate?.(reason);
    this.#settle();
  }

  #settle(): void {
    this.#onEnd();
    this.#onEnd = () => {};
    const p = this.#pending;
    this.#pending = null;
    p?.reject(this.#ended);
  }

  /** CancelRequest to the upstream backend, on a connection of its own, with its key. */
  cancel(): void {
    if (this.#ended !== null) return;
    const bytes = MessageWriter.encode((w) => writeCancelRequest(w, this.#upstreamPid, this.#key));
    this.#connect(this.#address).then((c) => {
      c.onClose = () => {};
      c.write(bytes);
      // The upstream closes its side once it has read the request.
      c.end();
    }, () => {
      // An upstream that cannot be reached has nothing to cancel.
    });
  }

  close(): Promise<void> {
    if (this.#ended !== null || this.#closing) return Promise.resolve();
    this.#closing = true;
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#ended ??= new PgError(ERRCODE.CONNECTION_DOES_NOT_EXIST, "session is closed");
        this.#settle();
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

/**
 * Walks frontend message headers across chunk boundaries, the client's side
 * of BackendScanner: after each `scan`, `count` is how many ReadyForQuery
 * messages the whole messages it completed owe (one per Query, Sync and
 * FunctionCall, except in COPY IN, where the upstream ignores Sync),
 * `endsCopy` whether one was CopyDone or CopyFail, and `answeredEnd` the
 * offset past the last one owed. A message counts when its last byte goes
 * by, since the upstream answers nothing before that. A length word below 4
 * loses the thread: the rest goes by uncounted, and the upstream, which
 * checks lengths itself, ends the session with its FATAL.
 */
class FrontendScanner {
  count = 0;
  endsCopy = false;
  answeredEnd = 0;
  #type = 0;
  /** Bytes of the current message's length word read; -1 at a message boundary. */
  #lengthRead = -1;
  #length = 0;
  #remaining = 0;
  #lost = false;

  /** At a message boundary, with the thread kept: a Terminate may follow. */
  get atBoundary(): boolean {
    return this.#lengthRead < 0 && !this.#lost;
  }

  /** Scans `chunk`; returns the offset of a Terminate that starts a message, else its length. */
  scan(chunk: Uint8Array, copyIn: boolean): number {
    this.count = 0;
    this.endsCopy = false;
    this.answeredEnd = 0;
    const n = chunk.length;
    if (this.#lost) return n;
    let inCopy = copyIn;
    let at = 0;
    while (at < n) {
      if (this.#lengthRead < 0) {
        const type = chunk[at] as number;
        if (type === FE.Terminate) return at;
        this.#type = type;
        this.#lengthRead = 0;
        this.#length = 0;
        at++;
        continue;
      }
      if (this.#lengthRead < 4) {
        this.#length = (this.#length << 8) | (chunk[at] as number);
        at++;
        if (++this.#lengthRead < 4) continue;
        if (this.#length < 4) {
          this.#lost = true;
          return n;
        }
        this.#remaining = this.#length - 4;
        if (this.#remaining > 0) continue;
      } else {
        const step = Math.min(this.#remaining, n - at);
        at += step;
        this.#remaining -= step;
        if (this.#remaining > 0) continue;
      }
      // The message ends at `at`.
      this.#lengthRead = -1;
      const type = this.#type;
      if (type === FE.CopyDone || type === FE.CopyFail) {
        inCopy = false;
        this.endsCopy = true;
      } else if (type === FE.Query || type === FE.FunctionCall || (type === FE.Sync && !inCopy)) {
        this.count++;
        this.answeredEnd = at;
      }
    }
    return n;
  }
}

/**
 * Walks backend message headers across chunk boundaries without copying:
 * it keeps only a partial header, the ReadyForQuery status byte, and the
 * body of an ErrorResponse (to learn a FATAL's code when the upstream then
 * hangs up).
 */
export class BackendScanner {
  /** The last FATAL ErrorResponse the upstream sent, if any. */
  lastFatal: PgError | null = null;

  #onReadyForQuery: (status: TransactionStatus) => void;
  #onCopyIn: () => void;
  #header = new Uint8Array(5);
  #headerLen = 0;
  /** Body bytes still to pass of the current message. */
  #remaining = 0;
  #type = 0;
  #error: Uint8Array | null = null;
  #errorLen = 0;

  constructor(hooks: {
    onReadyForQuery: (status: TransactionStatus) => void;
    onCopyIn: () => void;
  }) {
    this.#onReadyForQuery = hooks.onReadyForQuery;
    this.#onCopyIn = hooks.onCopyIn;
  }

  /** Scans the whole range; a PgError if the bytes cannot be PostgreSQL's. */
  scan(chunk: Uint8Array, from: number, to: number): PgError | null {
    const r = this.scanUntil(chunk, from, () => false, to);
    return typeof r === "number" ? null : r;
  }

  /**
   * Scans from `from` and returns the offset just past the first message
   * after which `stop()` is true (or the end of the chunk).
   */
  scanUntil(
    chunk: Uint8Array,
    from: number,
    stop: () => boolean,
    to: number = chunk.length,
  ): number | PgError {
    let at = from;
    while (at < to) {
      if (this.#remaining > 0) {
        const n = Math.min(this.#remaining, to - at);
        this.#capture(chunk, at, n);
        at += n;
        this.#remaining -= n;
        if (this.#remaining === 0) {
          this.#complete(chunk[at - 1] as number);
          if (stop()) return at;
        }
        continue;
      }
      // A header, possibly split across chunks (kept in #header then).
      let h = chunk;
      let hat = at;
      if (this.#headerLen === 0 && at + 5 <= to) {
        at += 5;
      } else {
        const n = Math.min(5 - this.#headerLen, to - at);
        this.#header.set(chunk.subarray(at, at + n), this.#headerLen);
        this.#headerLen += n;
        at += n;
        if (this.#headerLen < 5) break;
        this.#headerLen = 0;
        h = this.#header;
        hat = 0;
      }
      this.#type = h[hat] as number;
      const len = ((h[hat + 1] as number) << 24 | (h[hat + 2] as number) << 16 |
        (h[hat + 3] as number) << 8 | (h[hat + 4] as number)) >>> 0;
      if (len < 4 || len > MAX_BACKEND_MESSAGE) {
        return new PgError(
          ERRCODE.PROTOCOL_VIOLATION,
          "terminating connection because of an invalid message from the upstream server",
          {
            severity: "FATAL",
            detail: `Message type 0x${this.#type.toString(16)} has invalid length ${len}.`,
          },
        );
      }
      this.#remaining = len - 4;
      if (this.#type === BE.ErrorResponse && this.#remaining <= MAX_ERROR_CAPTURE) {
        this.#error = new Uint8Array(this.#remaining);
        this.#errorLen = 0;
      }
      if (this.#remaining === 0) {
        this.#complete(-1);
        if (stop()) return at;
      }
    }
    return at;
  }

  #capture(chunk: Uint8Array, at: number, n: number): void {
    if (this.#error === null) return;
    this.#error.set(chunk.subarray(at, at + n), this.#errorLen);
    this.#errorLen += n;
  }

  /** A message ended; `last` is its last body byte (ReadyForQuery's status), -1 if empty. */
  #complete(last: number): void {
    switch (this.#type) {
      case BE.ReadyForQuery: {
        const s = String.fromCharCode(last);
        this.#onReadyForQuery(s === "T" || s === "E" ? s : "I");
        break;
      }
      case BE.CopyInResponse:
      case BE.CopyBothResponse:
        this.#onCopyIn();
        break;
      case BE.ErrorResponse: {
        const body = this.#error;
        this.#error = null;
        if (body === null) break;
        try {
          const e = pgErrorFromFields(parseErrorResponse(body));
          if (e.severity === "FATAL" || e.severity === "PANIC") this.lastFatal = e;
        } catch {
          // A malformed ErrorResponse is relayed; the client's driver judges it.
        }
        break;
      }
    }
  }
}
