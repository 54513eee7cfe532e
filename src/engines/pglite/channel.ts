/**
 * The exec channel between a `worker` executor and its Worker
 * (executor.ts, executor-worker.ts): one SharedArrayBuffer holding the
 * request in flight and its answer, with Atomics to say each is there.
 * A postMessage round trip costs a structured clone each way and a message
 * task on both event loops; here the request and the answer are copied
 * into shared memory and each side is woken by `Atomics.notify`. Both sides
 * wait with `Atomics.waitAsync`, never `Atomics.wait`: the engine's event
 * loop serves every session, and the Worker's finishes group commit's
 * fdatasyncs between execs (walflush.ts).
 *
 * It also carries the flow control of streamed answers: the Worker counts
 * the bytes it posted as `data` (UNACKED) and waits while more than
 * STREAM_WINDOW are not taken; the executor takes them off once the
 * session's side has room for them (a client that reads slowly holds
 * PostgreSQL back, as its socket holds a PostgreSQL backend back).
 *
 * Only what fits goes here: a request of at most REQUEST_CAPACITY bytes,
 * and an answer that was not streamed (pipelined answers and answers of
 * more than REPLY_CAPACITY bytes still go as postMessage `data`, and then
 * the `done` too, so that it never overtakes them). The executor sends one
 * exec at a time, so one slot of each suffices: a request is never written
 * while the Worker may still read the one before, and an answer never
 * while the executor may still read the one before.
 */

import type { BackendSignal } from "./backends.ts";
import type { TempSpan } from "./tempnamespace.ts";

/** Int32 slots of the header. */
const REQUEST_SEQ = 0;
const REQUEST_LENGTH = 1;
const REQUEST_EXTRA = 2;
const REPLY_SEQ = 3;
const REPLY_LENGTH = 4;
const REPLY_EXTRA = 5;
/** Bytes of streamed answer (`data` messages) the executor has not taken yet. */
const UNACKED = 6;
/** Float64 slots, after the Int32 ones. */
const F_RUN_AS = 4;
const F_PID = 5;
const F_TIMEOUT = 6;
const F_WAL = 7;
const HEADER_BYTES = 64;

export const REQUEST_CAPACITY = 64 * 1024;
export const REPLY_CAPACITY = 256 * 1024;
export const CHANNEL_BYTES = HEADER_BYTES + REQUEST_CAPACITY + REPLY_CAPACITY;
/** Streamed answer bytes the Worker may have posted and the executor not taken. */
export const STREAM_WINDOW = 1024 * 1024;
/** REPLY_SEQ after the executor closed: wakes a waiter for good. */
const CLOSED = -1;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What an exec carries besides its bytes (executor.ts's instanceOptions). */
export interface ChannelExecOptions {
  readonly runAs: number | null;
  readonly pid: number | null;
  readonly timeoutMs: number;
  /** The rarely present rest (backends, activity, loadExtensions, temp), sent as JSON. */
  readonly [extra: string]: unknown;
}

/** What the Worker answers when the answer went through the channel. */
export interface ChannelReply {
  readonly bytes: Uint8Array;
  readonly error: string | null;
  readonly signals: readonly BackendSignal[];
  readonly temp: TempSpan | null;
  readonly wal: number;
}

const NO_SIGNALS: readonly BackendSignal[] = [];
const FIXED = new Set(["runAs", "pid", "timeoutMs"]);

class Views {
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  readonly request: Uint8Array;
  readonly reply: Uint8Array;
  constructor(sab: SharedArrayBuffer) {
    this.i32 = new Int32Array(sab, 0, HEADER_BYTES / 4);
    this.f64 = new Float64Array(sab, 0, HEADER_BYTES / 8);
    this.request = new Uint8Array(sab, HEADER_BYTES, REQUEST_CAPACITY);
    this.reply = new Uint8Array(sab, HEADER_BYTES + REQUEST_CAPACITY, REPLY_CAPACITY);
  }
}

/** The executor's end. */
export class ChannelRequester {
  readonly buffer: SharedArrayBuffer;
  #v: Views;

  constructor() {
    this.buffer = new SharedArrayBuffer(CHANNEL_BYTES);
    this.#v = new Views(this.buffer);
  }

  /**
   * Writes exec `seq` and wakes the Worker; false (nothing written) when it
   * does not fit, and the caller posts it instead.
   */
  trySend(seq: number, bytes: Uint8Array, options: ChannelExecOptions): boolean {
    let extra: Uint8Array | null = null;
    for (const k in options) {
      if (FIXED.has(k)) continue;
      const rest: Record<string, unknown> = {};
      for (const [name, value] of Object.entries(options)) {
        if (!FIXED.has(name)) rest[name] = value;
      }
      extra = encoder.encode(JSON.stringify(rest));
      break;
    }
    const extraLength = extra?.length ?? 0;
    if (bytes.length + extraLength > REQUEST_CAPACITY) return false;
    const v = this.#v;
    v.request.set(bytes, 0);
    if (extra !== null) v.request.set(extra, bytes.length);
    v.f64[F_RUN_AS] = options.runAs ?? NaN;
    v.f64[F_PID] = options.pid ?? NaN;
    v.f64[F_TIMEOUT] = options.timeoutMs;
    v.i32[REQUEST_LENGTH] = bytes.length;
    v.i32[REQUEST_EXTRA] = extraLength;
    // The store publishes the writes above (Atomics are sequentially consistent).
    Atomics.store(v.i32, REQUEST_SEQ, seq);
    Atomics.notify(v.i32, REQUEST_SEQ);
    return true;
  }

  /**
   * Waits for the answer to exec `seq` in the channel. Resolves null once
   * `stillWaiting()` is false (the answer came as a message instead, or the
   * executor failed or closed).
   */
  async reply(seq: number, stillWaiting: () => boolean): Promise<ChannelReply | null> {
    const v = this.#v;
    for (;;) {
      const at = Atomics.load(v.i32, REPLY_SEQ);
      if (at === seq) return this.#read();
      if (at === CLOSED || !stillWaiting()) return null;
      const w = Atomics.waitAsync(v.i32, REPLY_SEQ, at);
      if (w.async) await w.value;
    }
  }

  /** `n` bytes of a streamed answer were taken: the Worker may post as many more. */
  ack(n: number): void {
    Atomics.sub(this.#v.i32, UNACKED, n);
    Atomics.notify(this.#v.i32, UNACKED);
  }

  /** Wakes every waiter for good (the executor is closing). */
  close(): void {
    Atomics.store(this.#v.i32, REPLY_SEQ, CLOSED);
    Atomics.notify(this.#v.i32, REPLY_SEQ);
  }

  #read(): ChannelReply {
    const v = this.#v;
    const length = v.i32[REPLY_LENGTH]!;
    const extraLength = v.i32[REPLY_EXTRA]!;
    const bytes = v.reply.slice(0, length);
    const wal = v.f64[F_WAL]!;
    if (extraLength === 0) return { bytes, error: null, signals: NO_SIGNALS, temp: null, wal };
    const extra = JSON.parse(decoder.decode(v.reply.slice(length, length + extraLength))) as {
      error: string | null;
      signals: readonly BackendSignal[];
      temp: TempSpan | null;
    };
    return { bytes, error: extra.error, signals: extra.signals, temp: extra.temp, wal };
  }
}

/** The Worker's end. */
export class ChannelServer {
  #v: Views;
  #seen = 0;

  constructor(buffer: SharedArrayBuffer) {
    this.#v = new Views(buffer);
  }

  /** A new exec: nothing of its answer is outstanding yet. */
  startStream(): void {
    Atomics.store(this.#v.i32, UNACKED, 0);
  }

  /**
   * `n` bytes were posted as `data`; blocks this thread (the engine's
   * Worker, inside PostgreSQL's write) while more than STREAM_WINDOW are
   * not taken, unless `stop()` (the exec was cancelled: let it reach its
   * CHECK_FOR_INTERRUPTS and end).
   */
  posted(n: number, stop: () => boolean): void {
    const i32 = this.#v.i32;
    let now = Atomics.add(i32, UNACKED, n) + n;
    while (now > STREAM_WINDOW && !stop()) {
      Atomics.wait(i32, UNACKED, now, 50);
      now = Atomics.load(i32, UNACKED);
    }
  }

  /** The next request, once the executor wrote it. */
  async next(): Promise<{ seq: number; bytes: Uint8Array; options: ChannelExecOptions }> {
    const v = this.#v;
    for (;;) {
      const seq = Atomics.load(v.i32, REQUEST_SEQ);
      if (seq !== this.#seen) {
        this.#seen = seq;
        const length = v.i32[REQUEST_LENGTH]!;
        const extraLength = v.i32[REQUEST_EXTRA]!;
        const bytes = v.request.slice(0, length);
        const runAs = v.f64[F_RUN_AS]!;
        const pid = v.f64[F_PID]!;
        const fixed = {
          runAs: Number.isNaN(runAs) ? null : runAs,
          pid: Number.isNaN(pid) ? null : pid,
          timeoutMs: v.f64[F_TIMEOUT]!,
        };
        const options = extraLength === 0 ? fixed : {
          ...JSON.parse(decoder.decode(v.request.slice(length, length + extraLength))),
          ...fixed,
        };
        return { seq, bytes, options };
      }
      const w = Atomics.waitAsync(v.i32, REQUEST_SEQ, seq);
      if (w.async) await w.value;
    }
  }

  /**
   * Writes the answer to exec `seq` and wakes the executor; false (nothing
   * written) when it does not fit, and the caller posts it instead.
   */
  tryReply(
    seq: number,
    parts: readonly Uint8Array[],
    done: {
      error: string | null;
      signals: readonly BackendSignal[];
      temp: TempSpan | null;
      wal: number;
    },
  ): boolean {
    let length = 0;
    for (const p of parts) length += p.length;
    const extra = done.error === null && done.signals.length === 0 && done.temp === null
      ? null
      : encoder.encode(
        JSON.stringify({ error: done.error, signals: done.signals, temp: done.temp }),
      );
    const extraLength = extra?.length ?? 0;
    if (length + extraLength > REPLY_CAPACITY) return false;
    const v = this.#v;
    let at = 0;
    for (const p of parts) {
      v.reply.set(p, at);
      at += p.length;
    }
    if (extra !== null) v.reply.set(extra, length);
    v.i32[REPLY_LENGTH] = length;
    v.i32[REPLY_EXTRA] = extraLength;
    v.f64[F_WAL] = done.wal;
    Atomics.store(v.i32, REPLY_SEQ, seq);
    Atomics.notify(v.i32, REPLY_SEQ);
    return true;
  }
}
