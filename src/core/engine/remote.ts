/**
 * The engine across a process boundary: `serveEngineConnection` runs in the
 * engine child and serves one backend's session over a byte stream (a Unix
 * socket); `connectRemoteEngine` runs in the backend and gives it an
 * `Engine` whose sessions live in the engine child.
 *
 * This is the pgts stand-in for PostgreSQL's shared memory: the engine child
 * owns the data, backends own clients. The stream carries small frames —
 * type byte, uint32 payload length, payload — and the payloads are protocol
 * bytes, so nothing is parsed twice; JSON appears only once per session, at
 * start. A backend has at most one `exec` in flight; `cancel` may overtake
 * it. A session the engine ends itself (idle-in-transaction timeout, engine
 * failure) sends its FATAL as asynchronous bytes, then a 'T' frame that
 * becomes the backend session's `onTerminate`. If the stream breaks, every pending call fails: the postmaster's crash
 * cycle, not this module, decides what happens next.
 */

import { ERRCODE, isPgError, PgError, type Severity } from "../elog.ts";
import {
  answersExpected,
  endsWithReadyForQuery,
  flushBeforeExecute,
} from "../protocol/pipeline.ts";
import type { Connection } from "../adapter.ts";
import { ByteQueue } from "../protocol/bytequeue.ts";
import { concatBytes } from "../protocol/msgbuf.ts";
import type {
  BackendOutput,
  Engine,
  EngineSession,
  RoleInfo,
  SessionStartup,
  TransactionStatus,
} from "./types.ts";
import { rejectionFor } from "../postmaster/deadend.ts";

/** Frame types, backend → engine. */
const F_START = 0x53; // 'S' JSON SessionStartup
const F_EXEC = 0x58; // 'X' frontend bytes
const F_CANCEL = 0x43; // 'C'
const F_CLOSE = 0x51; // 'Q'
const F_LOOKUP = 0x4c; // 'L' role name
/** Frame types, engine → backend. */
const F_REPLY = 0x52; // 'R' JSON reply to lookup or start
const F_OUTPUT = 0x4f; // 'O' backend bytes of the exec in flight
const F_DONE = 0x44; // 'D' one byte: transaction status
const F_FAILED = 0x45; // 'E' JSON error of the exec in flight
const F_ASYNC = 0x41; // 'A' asynchronous backend bytes
const F_TERMINATED = 0x54; // 'T' JSON error: the engine ended the session (after its FATAL in 'A')

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function frame(type: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

/** Bytes of an exec's answer gathered before they are written anyway. */
const BATCH_LIMIT = 64 * 1024;

interface SerializedError {
  code: string;
  message: string;
  severity: Severity;
  detail?: string;
  hint?: string;
}

function serializeError(e: unknown): SerializedError {
  if (isPgError(e)) {
    return {
      code: e.code,
      message: e.message,
      severity: e.severity,
      ...(e.detail !== undefined ? { detail: e.detail } : {}),
      ...(e.hint !== undefined ? { hint: e.hint } : {}),
    };
  }
  return {
    code: ERRCODE.INTERNAL_ERROR,
    message: e instanceof Error ? e.message : String(e),
    severity: "ERROR",
  };
}

function deserializeError(s: SerializedError): PgError {
  const { code, message, ...rest } = s;
  return new PgError(code, message, rest);
}

/**
 * Splits a byte stream into frames. Chunks are queued, not re-joined on
 * every arrival: a 16 MiB exec arriving in small chunks is copied once, when
 * it is whole, not once per chunk (which made memory and time grow with the
 * square of its size).
 */
class FrameReader {
  #queue = new ByteQueue();
  onFrame: (type: number, payload: Uint8Array) => void;

  constructor(onFrame: (type: number, payload: Uint8Array) => void) {
    this.onFrame = onFrame;
  }

  push(chunk: Uint8Array): void {
    const q = this.#queue;
    q.push(chunk);
    while (q.size >= 5) {
      const len = q.peekInt32(1) >>> 0;
      if (q.size - 5 < len) break;
      const type = q.peekByte(0);
      q.skip(5);
      // The payload must outlive this chunk when a consumer keeps it: a
      // payload inside one chunk is copied; one assembled from several is new.
      let assembled = false;
      const payload = q.take(len, (n) => {
        assembled = true;
        return new Uint8Array(n);
      });
      this.onFrame(type, assembled ? payload : payload.slice());
    }
  }
}

const connectionLost = () =>
  new PgError(ERRCODE.CONNECTION_FAILURE, "lost connection to the engine process", {
    severity: "FATAL",
  });

/**
 * Serves one backend's session on `conn` (engine side). Resolves when the
 * backend closed the stream; the session is closed (and its transaction
 * rolled back) whatever the reason.
 */
export function serveEngineConnection(engine: Engine, conn: Connection): Promise<void> {
  return new Promise((resolve) => {
    let session: EngineSession | null = null;
    let closed = false;
    // Frames are handled strictly in order, except cancel, which must reach a
    // running exec: everything else waits for the previous frame's work.
    let chain: Promise<void> = Promise.resolve();
    // An exec's frames are gathered and leave in one write with its DONE:
    // one wake-up of the backend per statement instead of one per chunk.
    // Asynchronous bytes produced meanwhile join the batch, in order.
    let batch: Uint8Array[] | null = null;
    let batched = 0;
    // The stream's buffer is past its limit (the backend reads slower than
    // the engine answers): the exec's output says so, and the engine
    // produces no more until it has drained (backpressure).
    let full = false;
    const write = (bytes: Uint8Array) => {
      if (!closed && !conn.write(bytes)) full = true;
    };
    const flushBatch = () => {
      if (batch === null || batch.length === 0) return;
      const parts = batch;
      batch = [];
      batched = 0;
      write(parts.length === 1 ? parts[0]! : concatBytes(parts));
    };
    const send = (type: number, payload: Uint8Array) => {
      if (batch !== null) {
        batch.push(frame(type, payload));
        batched += 5 + payload.length;
        if (batched >= BATCH_LIMIT) flushBatch();
      } else write(frame(type, payload));
    };
    const pressure = (): Promise<void> | undefined => {
      if (!full || closed) return undefined;
      full = false;
      return conn.drained();
    };
    // The backend is gone or done: its session is closed now, not after the
    // frames queued before this (a running statement is cancelled and its
    // transaction rolled back at once; queued execs are dropped), so that a
    // dead client never keeps the engine.
    const finish = () => {
      if (closed) return;
      closed = true;
      const s = session;
      session = null;
      const closing = s?.close().catch(() => {});
      void chain.then(() => closing).catch(() => {}).finally(resolve);
    };
    const reader = new FrameReader((type, payload) => {
      if (type === F_CANCEL) {
        session?.cancel();
        return;
      }
      if (type === F_CLOSE) {
        conn.end();
        finish();
        return;
      }
      chain = chain.then(async () => {
        if (closed) return;
        switch (type) {
          case F_START: {
            try {
              const startup = JSON.parse(decoder.decode(payload)) as SessionStartup;
              const r = await engine.startSession(startup);
              if (closed) {
                // The backend left while the session was being started.
                await r.session.close().catch(() => {});
                return;
              }
              session = r.session;
              session.onAsync = (bytes) => {
                send(F_ASYNC, bytes);
                return pressure();
              };
              session.onTerminate = (reason) =>
                send(F_TERMINATED, encoder.encode(JSON.stringify(serializeError(reason))));
              send(F_REPLY, encoder.encode(JSON.stringify({ parameterStatus: r.parameterStatus })));
            } catch (e) {
              send(F_REPLY, encoder.encode(JSON.stringify({ error: serializeError(e) })));
            }
            return;
          }
          case F_LOOKUP: {
            try {
              const role = await engine.lookupRole(decoder.decode(payload));
              send(F_REPLY, encoder.encode(JSON.stringify({ role })));
            } catch (e) {
              send(F_REPLY, encoder.encode(JSON.stringify({ error: serializeError(e) })));
            }
            return;
          }
          case F_EXEC: {
            const s = session;
            if (s === null) {
              send(F_FAILED, encoder.encode(JSON.stringify(serializeError(connectionLost()))));
              return;
            }
            batch = [];
            // Each answer of a pipelined input goes out at its ReadyForQuery
            // (pipeline.ts), and every part of one with a Flush before an
            // Execute as it comes; a single answer is sent in one write at the end.
            const pipelined = answersExpected(payload) > 1;
            const flushes = flushBeforeExecute(payload) >= 0;
            try {
              await s.exec(payload, (bytes) => {
                send(F_OUTPUT, bytes);
                if (flushes || (pipelined && endsWithReadyForQuery(bytes))) flushBatch();
                return pressure();
              });
              send(F_DONE, encoder.encode(s.transactionStatus));
            } catch (e) {
              send(F_FAILED, encoder.encode(JSON.stringify(serializeError(e))));
            } finally {
              flushBatch();
              batch = null;
            }
            return;
          }
          default:
            // A frame this side does not know: the backend is broken; drop it.
            conn.destroy();
            finish();
        }
      });
    });
    conn.onData = (chunk) => reader.push(chunk);
    conn.onClose = finish;
    conn.resume();
  });
}

/**
 * An `Engine` for one backend (backend side): one stream, opened by
 * `connect()` on first use, carries the role lookup and then the backend's
 * single session.
 */
export function connectRemoteEngine(connect: () => Promise<Connection>): Engine {
  let channel: Promise<RemoteChannel> | null = null;
  // The engine's socket is gone only while the engine child is: it has
  // crashed and the postmaster has not yet told this backend (or it is
  // starting again). The client hears what PostgreSQL's postmaster says then.
  const open = () => (channel ??= connect().then(
    (c) => new RemoteChannel(c),
    (e) => {
      throw rejectionFor("CAC_RECOVERY", {
        detail: `The engine cannot be reached: ${e instanceof Error ? e.message : String(e)}.`,
      });
    },
  ));
  return {
    async lookupRole(name: string) {
      return await (await open()).lookupRole(name);
    },
    async startSession(startup: SessionStartup) {
      return await (await open()).startSession(startup);
    },
    async close() {
      if (channel !== null) (await channel).destroy();
    },
  };
}

type Waiter = { resolve: (payload: Uint8Array) => void; reject: (e: unknown) => void };

/** The backend's end of the stream: one request at a time, replies in order. */
class RemoteChannel {
  #conn: Connection;
  #broken = false;
  /** Replies to lookup and start, in order. */
  #replies: Waiter[] = [];
  #exec: {
    out: BackendOutput;
    resolve: () => void;
    reject: (e: unknown) => void;
  } | null = null;
  #closeResolve: (() => void) | null = null;
  /** Client writes waiting to drain; the engine stream is paused while there are any. */
  #held = 0;
  #session: (EngineSession & { transactionStatus: TransactionStatus }) | null = null;

  constructor(conn: Connection) {
    this.#conn = conn;
    const reader = new FrameReader((type, payload) => this.#onFrame(type, payload));
    conn.onData = (chunk) => reader.push(chunk);
    conn.onClose = () => this.#onClose();
    conn.resume();
  }

  destroy(): void {
    this.#conn.destroy();
  }

  #request(type: number, payload: Uint8Array): Promise<Uint8Array> {
    if (this.#broken) return Promise.reject(connectionLost());
    return new Promise((resolve, reject) => {
      this.#replies.push({ resolve, reject });
      this.#conn.write(frame(type, payload));
    });
  }

  async lookupRole(name: string): Promise<RoleInfo | null> {
    const reply = await this.#request(F_LOOKUP, encoder.encode(name));
    const r = JSON.parse(decoder.decode(reply)) as { role: RoleInfo | null } | {
      error: SerializedError;
    };
    if ("error" in r) throw deserializeError(r.error);
    return r.role;
  }

  async startSession(
    startup: SessionStartup,
  ): Promise<{ session: EngineSession; parameterStatus: Array<[string, string]> }> {
    if (this.#session !== null) throw new TypeError("This engine stream already has a session");
    const reply = await this.#request(F_START, encoder.encode(JSON.stringify(startup)));
    const r = JSON.parse(decoder.decode(reply)) as
      | { parameterStatus: Array<[string, string]> }
      | { error: SerializedError };
    if ("error" in r) throw deserializeError(r.error);
    const conn = this.#conn;
    const session: EngineSession & { transactionStatus: TransactionStatus } = {
      transactionStatus: "I",
      onAsync: null,
      onTerminate: null,
      exec: (frontend, out) => {
        if (this.#broken) return Promise.reject(connectionLost());
        if (this.#exec !== null) {
          return Promise.reject(new TypeError("EngineSession.exec called while one is in flight"));
        }
        return new Promise<void>((resolve, reject) => {
          this.#exec = { out, resolve, reject };
          conn.write(frame(F_EXEC, frontend));
        });
      },
      cancel: () => {
        if (!this.#broken) conn.write(frame(F_CANCEL, EMPTY));
      },
      close: () => {
        if (this.#broken) return Promise.resolve();
        return new Promise<void>((resolve) => {
          this.#closeResolve = resolve;
          conn.write(frame(F_CLOSE, EMPTY));
        });
      },
    };
    this.#session = session;
    return { session, parameterStatus: r.parameterStatus };
  }

  /** Stops reading the engine stream until `full` (a write to the full client socket) settles. */
  #holdWhile(full: void | Promise<void> | undefined): void {
    if (full === undefined) return;
    if (this.#held++ === 0) this.#conn.pause();
    void full.finally(() => {
      if (--this.#held === 0 && !this.#broken) this.#conn.resume();
    });
  }

  #onFrame(type: number, payload: Uint8Array): void {
    switch (type) {
      case F_REPLY:
        this.#replies.shift()?.resolve(payload);
        return;
      case F_OUTPUT:
        // The client's socket is full: stop reading the engine's answer
        // until it drains, so that the engine's side fills and holds back.
        this.#holdWhile(this.#exec?.out(payload));
        return;
      case F_DONE: {
        const p = this.#exec;
        this.#exec = null;
        if (this.#session !== null) {
          this.#session.transactionStatus = decoder.decode(payload) as TransactionStatus;
        }
        p?.resolve();
        return;
      }
      case F_FAILED: {
        const p = this.#exec;
        this.#exec = null;
        p?.reject(deserializeError(JSON.parse(decoder.decode(payload)) as SerializedError));
        return;
      }
      case F_ASYNC:
        // The same for notifications: the engine's session sees its client full.
        this.#holdWhile(this.#session?.onAsync?.(payload));
        return;
      case F_TERMINATED:
        this.#session?.onTerminate?.(
          deserializeError(JSON.parse(decoder.decode(payload)) as SerializedError),
        );
        return;
      default:
        // The engine sent something this side does not know: do not guess.
        this.#conn.destroy();
    }
  }

  #onClose(): void {
    this.#broken = true;
    const e = connectionLost();
    for (const w of this.#replies.splice(0)) w.reject(e);
    const p = this.#exec;
    this.#exec = null;
    p?.reject(e);
    this.#closeResolve?.();
  }
}
