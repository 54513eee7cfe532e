/**
 * The exec channel between a `worker` executor and its Worker
 * (workerexecutor.ts, executor-worker.ts): one SharedArrayBuffer with two slots,
 * each holding a request and its answer, and Atomics to say each is there.
 * A postMessage round trip costs a structured clone each way and a message
 * task on both event loops; here the request and the answer are copied
 * into shared memory and each side is woken by `Atomics.notify` on a bell
 * (a counter). Both sides wait with `Atomics.waitAsync`, never
 * `Atomics.wait`: the engine's event loop serves every session, and the
 * Worker's takes its messages (the COPY feed, the close) between execs.
 *
 * Two slots, so that the next exec can wait in the Worker while one runs
 * (the executor's pipeline, workerexecutor.ts): the Worker takes the slots in
 * turn, and an exec written as *conditional* runs only if the exec before
 * it ended its answer idle (`endedIdle`): a whole ReadyForQuery 'I' last,
 * no ParameterStatus, no error, no temporary namespace change, no signal,
 * no setting changed, nothing streamed. Otherwise the Worker answers it NOT_RUN and the
 * executor, which sees the same answer and decides the same, gives it back
 * to its session. Until the Worker claims it, the executor may withdraw it
 * (a cancel, or its statement_timeout, came first): then it never runs,
 * and is answered NOT_RUN too. The executor never has more than two execs
 * in the channel (a withdrawn one counts until its NOT_RUN is read), so a
 * slot is written again only after the Worker took its request and the
 * executor read its answer.
 *
 * It also carries the flow control of streamed answers: the Worker counts
 * the bytes it posted as `data` (UNACKED) and waits while more than
 * STREAM_WINDOW are not taken; the executor takes them off once the
 * session's side has room for them (a client that reads slowly holds
 * PostgreSQL back, as its socket holds a PostgreSQL backend back).
 *
 * The Worker polls the request bell for up to `spinUs` microseconds
 * (pgts.engine_spin_time) before it sleeps on it. A thread that sleeps
 * between statements pays for it in the next one: on a 2-vCPU VM the same
 * select-only exec took ~20 µs back to back and 60–90 µs after each
 * 50–200 µs sleep (cold caches, the idle vCPU's wake-up). In the server,
 * pgbench -S -c 4 went from ~9.5k to 12–15k TPS with a 200 µs poll on a
 * quiet host, at less CPU per transaction. A fixed poll cost connection
 * storms a fifth of their rate (it takes CPU from the thread that accepts
 * them), so the window adapts to the gaps the Worker sees (spinWindowAfter).
 * Waking a Worker that sleeps costs the executor's thread itself: timed
 * around `Atomics.notify`, 17 µs with the other vCPU idle and 50–80 µs
 * under pgbench when it woke the Worker (~0.1 µs when it did not), for
 * about half the execs of a connection storm. A Worker that napped instead
 * (timed 50 µs waits for 2 ms after its poll, so that it was never woken)
 * spared those but spent more CPU than they cost (`-C -S -c 4`: 468
 * against 445 µs of server CPU per connection, the same rate).
 * After an answer that leaves its session inside a transaction block
 * (ReadyForQuery 'T' or 'E': `endsInBlock`), the session keeps the engine
 * and its next statement is the only one that can come, after a round trip
 * to its client: the Worker then polls with a window of its own, up to
 * BLOCK_SPIN_FACTOR × engine_spin_time, adapting alike. TPC-B's
 * statements, seven round trips a transaction, had found the Worker asleep
 * at ~0.8 of them (its gaps beyond 200 µs on this VM, so the one window
 * shrank); with the block's window, pgbench -c 4 TPC-B ran 9% more
 * transactions (scripts/bench/ab.sh, medians of 10 rounds; 15–30% on warm
 * servers in rotated rounds) at no more CPU each, and select-only and
 * connection storms, whose answers end idle, were level.
 * The executor's thread polls for an answer the same way, but only for a
 * lone session (WorkerExecutor): pgbench -S -c 1 went from ~7.9k to
 * 9.5–13.6k TPS (pglite-socket ~7.1k in the same run). PostgreSQL spins on
 * a contended lock before it sleeps for the same reason. While other
 * sessions wait to run right after the exec (WorkerExecutor), that thread
 * polls for the answer between its other work instead (`reply`'s
 * `pollWhile`: one check per turn of its event loop, whose sockets are
 * served between them): an answer that `Atomics.waitAsync` waits for
 * costs that thread ~11 µs of CPU and comes ~25 µs after the Worker's
 * notify on this VM, a check between turns ~1 µs. pgbench -S -c 4 went
 * from 16.6k to 21.6k TPS (83 to 73 µs of server CPU a transaction;
 * scripts/bench/ab.sh, medians of 6), and at a rate-limited 5,000 TPS the
 * CPU per transaction stayed within the noise.
 *
 * Only what fits goes here: a request of at most REQUEST_CAPACITY bytes,
 * and an answer that was not streamed (pipelined answers and answers of
 * more than REPLY_CAPACITY bytes still go as postMessage `data`, and then
 * the `done` too, so that it never overtakes them; the slot then says
 * BY_MESSAGE).
 */

import { setImmediate } from "node:timers";
import { BE } from "../../core/protocol/constants.ts";
import { endsWithReadyForQuery } from "../../core/protocol/pipeline.ts";
import type { BackendSignal } from "./backends.ts";
import type { GucChange } from "./gucwatch.ts";
import type { TempSpan } from "./tempnamespace.ts";

/** Int32 slots of the header shared by both slots. */
const REQUEST_BELL = 0;
const REPLY_BELL = 1;
/** Bytes of streamed answer (`data` messages) the executor has not taken yet. */
const UNACKED = 2;
const CLOSED = 3;
/** Int32 fields of a slot, from its base (8 + 8 × slot). */
const REQUEST_SEQ = 0;
const REQUEST_LENGTH = 1;
const REQUEST_EXTRA = 2;
const REQUEST_CONDITIONAL = 3;
const REPLY_SEQ = 4;
const REPLY_LENGTH = 5;
const REPLY_EXTRA = 6;
const REPLY_KIND = 7;
/**
 * A conditional request's claim, one Int32 per slot (CLAIM_BASE + slot):
 * 0 while it waits, CLAIMED once the Worker took it to run, WITHDRAWN once
 * the executor took it back (a cancel or statement_timeout came first).
 * One compareExchange each, so exactly one side wins and both know which.
 */
const CLAIM_BASE = 24;
const CLAIMED = 1;
const WITHDRAWN = 2;
/** Float64 fields of a slot, from its base (16 + 4 × slot). */
const F_RUN_AS = 0;
const F_PID = 1;
const F_TIMEOUT = 2;
const F_WAL = 3;
const HEADER_BYTES = 256;

const i32Base = (slot: number) => 8 + 8 * slot;
const f64Base = (slot: number) => 16 + 4 * slot;

/** How the Worker answered an exec in a slot. */
export const ANSWERED = 0;
/** A conditional exec whose predecessor did not end idle: it did not run. */
export const NOT_RUN = 1;
/** The answer went (or goes) as postMessage `data` and `done`. */
export const BY_MESSAGE = 2;

export const REQUEST_CAPACITY = 64 * 1024;
export const REPLY_CAPACITY = 256 * 1024;
export const CHANNEL_BYTES = HEADER_BYTES + 2 * (REQUEST_CAPACITY + REPLY_CAPACITY);
/** Streamed answer bytes the Worker may have posted and the executor not taken. */
export const STREAM_WINDOW = 1024 * 1024;

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

/** The end of an exec, however its answer came. */
export interface ExecEnd {
  readonly error: string | null;
  readonly signals: readonly BackendSignal[];
  readonly temp: TempSpan | null;
  /** What the exec changed of the settings (gucwatch.ts), or null. */
  readonly gucs: GucChange | null;
}

/** What the Worker answers when the answer went through the channel. */
export interface ChannelReply extends ExecEnd {
  readonly kind: typeof ANSWERED | typeof NOT_RUN | typeof BY_MESSAGE;
  readonly bytes: Uint8Array;
  readonly wal: number;
}

const NO_SIGNALS: readonly BackendSignal[] = [];
const EMPTY = new Uint8Array(0);
const FIXED = new Set(["runAs", "pid", "timeoutMs"]);

/**
 * Whether an exec ended so that the next may run at once without the
 * engine's thread looking at it: its whole answer (`parts`, not streamed)
 * ends with ReadyForQuery 'I' and holds no ParameterStatus, and it raised
 * nothing, changed no temporary namespace, signalled no session and
 * changed no setting (a function's set_config: the next session must not
 * run with it). Both sides decide with this one function on the same
 * answer.
 */
export function endedIdle(parts: readonly Uint8Array[], end: ExecEnd): boolean {
  if (
    end.error !== null || end.signals.length > 0 || end.temp !== null || end.gucs !== null
  ) {
    return false;
  }
  if (trailingStatus(parts) !== 0x49 /* 'I' */) return false;
  // No ParameterStatus anywhere: walk the message headers across parts.
  let skip = 0;
  let header = 0;
  let type = 0;
  let len = 0;
  for (const p of parts) {
    let at = 0;
    while (at < p.length) {
      if (skip > 0) {
        const n = Math.min(skip, p.length - at);
        at += n;
        skip -= n;
        continue;
      }
      const b = p[at++]!;
      if (header === 0) {
        type = b;
        if (type === BE.ParameterStatus) return false;
        len = 0;
      } else len = (len << 8) | b;
      if (++header === 5) {
        header = 0;
        skip = (len >>> 0) - 4;
      }
    }
  }
  return true;
}

class Views {
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  readonly request: [Uint8Array, Uint8Array];
  readonly reply: [Uint8Array, Uint8Array];
  constructor(sab: SharedArrayBuffer) {
    this.i32 = new Int32Array(sab, 0, HEADER_BYTES / 4);
    this.f64 = new Float64Array(sab, 0, HEADER_BYTES / 8);
    const at = (n: number) => HEADER_BYTES + n;
    this.request = [
      new Uint8Array(sab, at(0), REQUEST_CAPACITY),
      new Uint8Array(sab, at(REQUEST_CAPACITY), REQUEST_CAPACITY),
    ];
    this.reply = [
      new Uint8Array(sab, at(2 * REQUEST_CAPACITY), REPLY_CAPACITY),
      new Uint8Array(sab, at(2 * REQUEST_CAPACITY + REPLY_CAPACITY), REPLY_CAPACITY),
    ];
  }
}

/** The executor's end. */
export class ChannelRequester {
  readonly buffer: SharedArrayBuffer;
  #v: Views;
  /** The slot the next request goes to. */
  #slot = 0;

  constructor() {
    this.buffer = new SharedArrayBuffer(CHANNEL_BYTES);
    this.#v = new Views(this.buffer);
  }

  /**
   * Writes exec `seq` into the next slot and wakes the Worker; returns the
   * slot, or -1 (nothing written) when it does not fit, and the caller
   * posts it instead. `conditional`: it runs only if the exec before it
   * ends idle (endedIdle).
   */
  trySend(
    seq: number,
    bytes: Uint8Array,
    options: ChannelExecOptions,
    conditional: boolean,
  ): number {
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
    if (bytes.length + extraLength > REQUEST_CAPACITY) return -1;
    const v = this.#v;
    const slot = this.#slot;
    this.#slot = 1 - slot;
    const request = v.request[slot]!;
    request.set(bytes, 0);
    if (extra !== null) request.set(extra, bytes.length);
    const b = i32Base(slot);
    const f = f64Base(slot);
    v.f64[f + F_RUN_AS] = options.runAs ?? NaN;
    v.f64[f + F_PID] = options.pid ?? NaN;
    v.f64[f + F_TIMEOUT] = options.timeoutMs;
    v.i32[b + REQUEST_LENGTH] = bytes.length;
    v.i32[b + REQUEST_EXTRA] = extraLength;
    v.i32[b + REQUEST_CONDITIONAL] = conditional ? 1 : 0;
    v.i32[CLAIM_BASE + slot] = 0;
    // The store publishes the writes above (Atomics are sequentially consistent).
    Atomics.store(v.i32, b + REQUEST_SEQ, seq);
    Atomics.add(v.i32, REQUEST_BELL, 1);
    Atomics.notify(v.i32, REQUEST_BELL);
    return slot;
  }

  /**
   * Takes back the conditional exec in `slot` before the Worker takes it to
   * run: true when it will not run (the Worker answers it NOT_RUN), false
   * when the Worker has it already.
   */
  withdraw(slot: number): boolean {
    return Atomics.compareExchange(this.#v.i32, CLAIM_BASE + slot, 0, WITHDRAWN) === 0;
  }

  /**
   * Waits for the answer to exec `seq` in `slot`. Resolves null once
   * `stillWaiting()` is false (the executor failed or closed, or the answer
   * came as a message). Polled first for up to `spinMs`, holding this
   * thread (WorkerExecutor's lone session); then, for up to `pollMs` and
   * while `pollWhile()`, once per turn of this thread's event loop; then
   * it sleeps on the reply bell.
   */
  async reply(
    slot: number,
    seq: number,
    stillWaiting: () => boolean,
    spinMs = 0,
    pollMs = 0,
    pollWhile: () => boolean = () => false,
  ): Promise<ChannelReply | null> {
    const v = this.#v;
    const at = i32Base(slot) + REPLY_SEQ;
    const from = spinMs > 0 || pollMs > 0 ? performance.now() : 0;
    const until = spinMs > 0 ? from + spinMs : 0;
    const pollUntil = pollMs > 0 ? from + pollMs : 0;
    for (;;) {
      const bell = Atomics.load(v.i32, REPLY_BELL);
      if (Atomics.load(v.i32, at) === seq) return this.#read(slot, seq);
      if (Atomics.load(v.i32, CLOSED) !== 0 || !stillWaiting()) return null;
      if (until > 0 && performance.now() < until) continue;
      if (pollUntil > 0 && pollWhile() && performance.now() < pollUntil) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        continue;
      }
      const w = Atomics.waitAsync(v.i32, REPLY_BELL, bell);
      if (w.async) await w.value;
    }
  }

  /** The answer to exec `seq` in `slot` if it is there now, else null (no wait). */
  replied(slot: number, seq: number): ChannelReply | null {
    return Atomics.load(this.#v.i32, i32Base(slot) + REPLY_SEQ) === seq
      ? this.#read(slot, seq)
      : null;
  }

  /** `n` bytes of a streamed answer were taken: the Worker may post as many more. */
  ack(n: number): void {
    Atomics.sub(this.#v.i32, UNACKED, n);
    Atomics.notify(this.#v.i32, UNACKED);
  }

  /** Wakes every waiter for good (the executor is closing). */
  close(): void {
    Atomics.store(this.#v.i32, CLOSED, 1);
    Atomics.add(this.#v.i32, REPLY_BELL, 1);
    Atomics.notify(this.#v.i32, REPLY_BELL);
  }

  #read(slot: number, seq: number): ChannelReply {
    const v = this.#v;
    const b = i32Base(slot);
    const kind = v.i32[b + REPLY_KIND]! as ChannelReply["kind"];
    const length = v.i32[b + REPLY_LENGTH]!;
    const extraLength = v.i32[b + REPLY_EXTRA]!;
    const reply = v.reply[slot]!;
    const bytes = length === 0 ? EMPTY : reply.slice(0, length);
    const wal = v.f64[f64Base(slot) + F_WAL]!;
    // Read: the slot may take the answer after next.
    Atomics.compareExchange(v.i32, b + REPLY_SEQ, seq, 0);
    if (extraLength === 0) {
      return { kind, bytes, error: null, signals: NO_SIGNALS, temp: null, gucs: null, wal };
    }
    const extra = JSON.parse(decoder.decode(reply.slice(length, length + extraLength))) as ExecEnd;
    const { error, signals, temp, gucs } = extra;
    return { kind, bytes, error, signals, temp, gucs, wal };
  }
}

/**
 * How much longer than engine_spin_time the Worker may poll for the next
 * statement of a session inside a transaction block (ChannelServer).
 */
export const BLOCK_SPIN_FACTOR = 5;

/**
 * Whether an answer leaves its session inside a transaction block: its
 * last message a ReadyForQuery 'T' (in a block) or 'E' (in a failed one).
 */
export function endsInBlock(parts: readonly Uint8Array[]): boolean {
  const status = trailingStatus(parts);
  return status === 0x54 /* 'T' */ || status === 0x45 /* 'E' */;
}

/**
 * The transaction status of the ReadyForQuery that ends an answer (its
 * last non-empty part), or -1 when the answer does not end with one.
 */
function trailingStatus(parts: readonly Uint8Array[]): number {
  for (let i = parts.length - 1; i >= 0; i--) {
    const last = parts[i]!;
    if (last.length === 0) continue;
    return endsWithReadyForQuery(last) ? last[last.length - 1]! : -1;
  }
  return -1;
}

/**
 * The Worker's poll window after it slept, `waitedMs` from the start of its
 * poll of `windowMs` (at most `spinMs`) to the request: a wait that a
 * longer poll would have caught doubles the window (from spinMs / 8, up to
 * spinMs), one that no poll would have caught halves it, to 0 below
 * spinMs / 8. Gaps longer than spinMs (a connection storm's, whose work is
 * on other threads that need the CPU) then cost no polling, and short gaps
 * bring it back. KVM's halt polling adapts the same way.
 */
export function spinWindowAfter(windowMs: number, spinMs: number, waitedMs: number): number {
  if (waitedMs <= spinMs) return Math.min(spinMs, Math.max(windowMs * 2, spinMs / 8));
  return windowMs < spinMs / 8 ? 0 : windowMs / 2;
}

/** One request as the Worker takes it. */
export interface ChannelRequest {
  readonly seq: number;
  readonly slot: number;
  readonly bytes: Uint8Array;
  readonly options: ChannelExecOptions;
  readonly conditional: boolean;
}

/** The Worker's end. */
export class ChannelServer {
  #v: Views;
  /** The slot the next request comes in. */
  #slot = 0;
  /** How long `next` polls for a request before it sleeps, in ms. */
  readonly #spinMs: number;
  /** The poll's window now, 0..spinMs (spinWindowAfter). */
  #windowMs: number;
  /** The window after an answer inside a transaction block, 0..spinMs × BLOCK_SPIN_FACTOR. */
  #blockWindowMs: number;

  /** `spinUs`: microseconds to poll for the next request before sleeping (pgts.engine_spin_time). */
  constructor(buffer: SharedArrayBuffer, spinUs = 0) {
    this.#v = new Views(buffer);
    this.#spinMs = Math.max(0, spinUs) / 1000;
    this.#windowMs = this.#spinMs;
    this.#blockWindowMs = this.#spinMs * BLOCK_SPIN_FACTOR;
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

  /**
   * The next request, once the executor wrote it (at once when it is
   * there). `inBlock`: the last answer left its session inside a
   * transaction block (endsInBlock), so the block's window polls for it.
   */
  next(inBlock = false): ChannelRequest | Promise<ChannelRequest> {
    return this.#take() ?? this.#wait(inBlock);
  }

  async #wait(inBlock: boolean): Promise<ChannelRequest> {
    const v = this.#v;
    const capMs = inBlock ? this.#spinMs * BLOCK_SPIN_FACTOR : this.#spinMs;
    for (;;) {
      const bell = Atomics.load(v.i32, REQUEST_BELL);
      const r = this.#take();
      if (r !== null) return r;
      const from = performance.now();
      const windowMs = inBlock ? this.#blockWindowMs : this.#windowMs;
      if (windowMs > 0 && this.#spin(bell, from, windowMs)) continue;
      const w = Atomics.waitAsync(v.i32, REQUEST_BELL, bell);
      if (w.async) await w.value;
      if (capMs > 0) {
        const after = spinWindowAfter(windowMs, capMs, performance.now() - from);
        if (inBlock) this.#blockWindowMs = after;
        else this.#windowMs = after;
      }
    }
  }

  /** Polls the request bell for up to `windowMs` from `from`: whether it rang (else sleep). */
  #spin(bell: number, from: number, windowMs: number): boolean {
    const i32 = this.#v.i32;
    const until = from + windowMs;
    do {
      if (Atomics.load(i32, REQUEST_BELL) !== bell) return true;
    } while (performance.now() < until);
    return false;
  }

  #take(): ChannelRequest | null {
    const v = this.#v;
    const slot = this.#slot;
    const b = i32Base(slot);
    const seq = Atomics.load(v.i32, b + REQUEST_SEQ);
    if (seq === 0) return null;
    const length = v.i32[b + REQUEST_LENGTH]!;
    const extraLength = v.i32[b + REQUEST_EXTRA]!;
    const conditional = v.i32[b + REQUEST_CONDITIONAL] === 1;
    const request = v.request[slot]!;
    const bytes = request.slice(0, length);
    const f = f64Base(slot);
    const runAs = v.f64[f + F_RUN_AS]!;
    const pid = v.f64[f + F_PID]!;
    const fixed = {
      runAs: Number.isNaN(runAs) ? null : runAs,
      pid: Number.isNaN(pid) ? null : pid,
      timeoutMs: v.f64[f + F_TIMEOUT]!,
    };
    const options = extraLength === 0 ? fixed : {
      ...JSON.parse(decoder.decode(request.slice(length, length + extraLength))),
      ...fixed,
    };
    Atomics.store(v.i32, b + REQUEST_SEQ, 0);
    this.#slot = 1 - slot;
    return { seq, slot, bytes, options, conditional };
  }

  /**
   * Writes the answer to exec `seq` into `slot` and wakes the executor;
   * false (nothing written) when it does not fit, and the caller posts it
   * instead (and then says so with `byMessage`).
   */
  tryReply(
    slot: number,
    seq: number,
    parts: readonly Uint8Array[],
    done: ExecEnd & { wal: number },
  ): boolean {
    let length = 0;
    for (const p of parts) length += p.length;
    const extra =
      done.error === null && done.signals.length === 0 && done.temp === null && done.gucs === null
        ? null
        : encoder.encode(
          JSON.stringify({
            error: done.error,
            signals: done.signals,
            temp: done.temp,
            gucs: done.gucs,
          }),
        );
    const extraLength = extra?.length ?? 0;
    if (length + extraLength > REPLY_CAPACITY) return false;
    const v = this.#v;
    const reply = v.reply[slot]!;
    let at = 0;
    for (const p of parts) {
      reply.set(p, at);
      at += p.length;
    }
    if (extra !== null) reply.set(extra, length);
    this.#publish(slot, seq, ANSWERED, length, extraLength, done.wal);
    return true;
  }

  /**
   * The conditional exec in `slot` is taken to run: false when the executor
   * withdrew it first (then it is answered NOT_RUN).
   */
  claim(slot: number): boolean {
    return Atomics.compareExchange(this.#v.i32, CLAIM_BASE + slot, 0, CLAIMED) === 0;
  }

  /** Exec `seq` in `slot` was conditional and did not run. */
  notRun(slot: number, seq: number, wal: number): void {
    this.#publish(slot, seq, NOT_RUN, 0, 0, wal);
  }

  /** Exec `seq`'s answer went as messages (its `done` was posted already). */
  byMessage(slot: number, seq: number, wal: number): void {
    this.#publish(slot, seq, BY_MESSAGE, 0, 0, wal);
  }

  #publish(
    slot: number,
    seq: number,
    kind: number,
    length: number,
    extraLength: number,
    wal: number,
  ): void {
    const v = this.#v;
    const b = i32Base(slot);
    v.i32[b + REPLY_LENGTH] = length;
    v.i32[b + REPLY_EXTRA] = extraLength;
    v.i32[b + REPLY_KIND] = kind;
    v.f64[f64Base(slot) + F_WAL] = wal;
    Atomics.store(v.i32, b + REPLY_SEQ, seq);
    Atomics.add(v.i32, REPLY_BELL, 1);
    Atomics.notify(v.i32, REPLY_BELL);
  }
}
