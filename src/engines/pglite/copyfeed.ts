/**
 * COPY FROM STDIN fed to the engine as the client sends it: the client's
 * socket, as PostgreSQL's CopyGetData sees it.
 *
 * PostgreSQL's backend reads a COPY's data from its socket, waiting for
 * each CopyData; PGlite has no socket and reads from the message it was
 * given, through that message's `length` and `subarray` (its read callback
 * asks how much input there is, then copies it into the backend's receive
 * buffer), and a read past the end is end of file. So the exec that runs a
 * COPY FROM STDIN Query is given a message that grows: `CopyFeedInput`,
 * whose `length` blocks the engine's Worker thread (Atomics.wait) until the
 * session has put more of the client's bytes into a shared ring, or has
 * ended the feed. One COPY then runs once, in bounded memory (the ring),
 * however large its data; the session waits for room before it takes the
 * client's next bytes, which is the backpressure that reaches the client.
 *
 * Only where PGlite runs in a Worker: on the engine's own thread a blocked
 * read would stop the very thread that must fill the ring (executor.ts).
 * The writer (`CopyFeed`, the engine's thread) and the reader (the Worker)
 * share one SharedArrayBuffer per executor; one exec runs at a time, so one
 * feed suffices, each COPY writing through a `CopyFeedWriter` of its own.
 * The session must always end a feed it opened with CopyDone or CopyFail
 * (a CopyFail of its own when the client is gone or breaks the protocol):
 * a feed left open blocks the engine for good, and one ended while PGlite
 * still reads the COPY's data is a FATAL (see CopyFeed).
 */

import { FE } from "../../core/protocol/constants.ts";
import { CollectorHint } from "./gchint.ts";
import { concat, fe, isCopyData, MessageBoundaries, readInt32 } from "./wire.ts";

/** The client's data is garbage on both threads once in the ring, or read from it (gchint.ts). */
const hint = new CollectorHint(64, 4);

/** Int32 slots. */
const WRITE_SEQ = 0; // bumped after each write or end: the reader waits on it
const READ_SEQ = 1; // bumped after each read: the writer waits on it
/** BigInt64 slots (after the Int32 ones). */
const WRITTEN = 1; // bytes written since open, total
const READ = 2; // bytes read since open, total
const ENDED = 3; // 1 once the feed has ended
const HEADER_BYTES = 32;

/** The ring: big enough that PostgreSQL's 64 kB reads and psql's 128 kB writes never wait on each other. */
export const FEED_CAPACITY = 1024 * 1024;

class Views {
  readonly i32: Int32Array;
  readonly i64: BigInt64Array;
  readonly ring: Uint8Array;
  constructor(sab: SharedArrayBuffer) {
    this.i32 = new Int32Array(sab, 0, HEADER_BYTES / 4);
    this.i64 = new BigInt64Array(sab, 0, HEADER_BYTES / 8);
    this.ring = new Uint8Array(sab, HEADER_BYTES, FEED_CAPACITY);
  }
}

/**
 * The engine thread's end. One SharedArrayBuffer serves every COPY of the
 * executor, one after the other, so each `open` returns a `CopyFeedWriter`
 * of its own: once the next COPY has opened the feed, what the previous
 * one's writer still does (a write waiting for room, the end its exec's
 * settling asks for, an end put off until a write is over) does nothing.
 * Before, such a late end reached the next COPY's feed, whose PGlite read
 * end of file before any data: an ERROR while reading a message, which is
 * PostgreSQL's FATAL "protocol synchronization was lost", an exit() in the
 * middle of PGlite's exec, after which the backend answered every exec
 * with that FATAL for ever (the fuzzer's wedge).
 */
export class CopyFeed {
  readonly buffer: SharedArrayBuffer;
  #v: Views;
  #current: CopyFeedWriter | null = null;

  constructor() {
    this.buffer = new SharedArrayBuffer(HEADER_BYTES + FEED_CAPACITY);
    this.#v = new Views(this.buffer);
  }

  /** Starts a feed (before the exec that reads it is sent); the writer of this one. */
  open(): CopyFeedWriter {
    const v = this.#v;
    Atomics.store(v.i64, WRITTEN, 0n);
    Atomics.store(v.i64, READ, 0n);
    Atomics.store(v.i64, ENDED, 0n);
    const writer: CopyFeedWriter = new CopyFeedWriter(v, () => this.#current === writer);
    this.#current = writer;
    return writer;
  }

  /** Ends the feed open now, if any (the executor is closing). */
  end(): void {
    this.#current?.end();
  }
}

/** One COPY's writer: puts the client's bytes in, waiting for room. */
export class CopyFeedWriter {
  #v: Views;
  /** Whether this writer's feed is still the one the engine reads. */
  #current: () => boolean;
  #written = 0;
  #open = true;
  /** Writes in progress, and an end asked for meanwhile. */
  #writing = 0;
  #endAfterWrite = false;
  #tail: Promise<void> = Promise.resolve();

  constructor(v: Views, current: () => boolean) {
    this.#v = v;
    this.#current = current;
  }

  get isOpen(): boolean {
    return this.#open && this.#current();
  }

  /** Bytes written and not yet read by the engine. */
  get pending(): number {
    if (!this.#current()) return 0;
    return this.#written - Number(Atomics.load(this.#v.i64, READ));
  }

  /**
   * Appends `bytes` (whole frontend messages), waiting while the ring is
   * full (the engine is slower than the client). Resolves once all of it is
   * in the ring, or when `gone()` says the exec reading the feed has ended.
   */
  write(bytes: Uint8Array, gone: () => boolean): Promise<void> {
    hint.note(bytes.length);
    // One write after the other, so that messages never interleave.
    this.#writing++;
    const w = this.#tail.then(() => this.#write(bytes, gone)).finally(() => {
      if (--this.#writing === 0 && this.#endAfterWrite) this.end();
    });
    this.#tail = w.catch(() => {});
    return w;
  }

  async #write(bytes: Uint8Array, gone: () => boolean): Promise<void> {
    const v = this.#v;
    let at = 0;
    while (at < bytes.length) {
      // Ended, or another COPY's feed now: nothing more goes in.
      if (!this.#open || !this.#current()) return;
      const seq = Atomics.load(v.i32, READ_SEQ);
      const free = FEED_CAPACITY - this.pending;
      if (free === 0) {
        if (gone()) return;
        const w = Atomics.waitAsync(v.i32, READ_SEQ, seq, 100);
        if (w.async) await w.value;
        continue;
      }
      const n = Math.min(free, bytes.length - at);
      const pos = this.#written % FEED_CAPACITY;
      const first = Math.min(n, FEED_CAPACITY - pos);
      v.ring.set(bytes.subarray(at, at + first), pos);
      if (first < n) v.ring.set(bytes.subarray(at + first, at + n), 0);
      at += n;
      this.#written += n;
      Atomics.store(v.i64, WRITTEN, BigInt(this.#written));
      Atomics.add(v.i32, WRITE_SEQ, 1);
      Atomics.notify(v.i32, WRITE_SEQ);
    }
  }

  /**
   * Ends the feed: once the engine has read what was written, it reads end
   * of file. During a write, at its end: the engine never sees half a
   * message (at its top level, PostgreSQL would take that for a client
   * that went away and end the backend). Nothing once another COPY has
   * opened the feed.
   */
  end(): void {
    if (!this.#open) return;
    if (this.#writing > 0) {
      this.#endAfterWrite = true;
      return;
    }
    this.#open = false;
    this.#endAfterWrite = false;
    if (!this.#current()) return;
    const v = this.#v;
    Atomics.store(v.i64, ENDED, 1n);
    Atomics.add(v.i32, WRITE_SEQ, 1);
    Atomics.notify(v.i32, WRITE_SEQ);
  }
}

/**
 * The Worker's end, given to PGlite as the exec's message: the exec's own
 * bytes (the COPY's Query), then whatever the feed brings. PGlite reads it
 * front to back, through `length` and `subarray` only (pglite.ts,
 * execProtocolRawSync and its read callback).
 */
export class CopyFeedInput {
  readonly 0: number;
  readonly head: Uint8Array;
  #v: Views;
  #scratch = new Uint8Array(64 * 1024);
  /** Bytes PGlite has read so far, the head's included. */
  #consumed = 0;
  /**
   * Whether the answer so far is inside the COPY's data (instance.ts sets
   * it from the answer): only then does a read wait for more. PGlite asks
   * for the input's length between messages too, with messages of the
   * head still in Postgres's receive buffer (an extended batch's Bind and
   * Execute, read in at once); a wait there, before the Execute had run,
   * held back the batch's answer, and with it the CopyInResponse the
   * client waits for before it sends any data.
   */
  inCopy: () => boolean = () => true;
  /**
   * How many CopyInResponses the answer has so far (instance.ts sets it).
   * A read waits only while they outnumber the CopyDone and CopyFail
   * messages the engine was given: once a COPY has its end, PGlite may ask
   * for the length again (its loop's test, after a Query's last
   * statement) before the COPY's CommandComplete is out, and a Query may
   * run other statements, another COPY among them, after it.
   */
  copyIns: () => number = () => Number.MAX_SAFE_INTEGER;
  /** CopyDone and CopyFail messages given to the engine. */
  #copyEnds = 0;
  readonly #messages = new MessageBoundaries((type) => {
    if (type === FE.CopyDone || type === FE.CopyFail) this.#copyEnds++;
  });

  constructor(buffer: SharedArrayBuffer, head: Uint8Array) {
    this.#v = new Views(buffer);
    this.head = head;
    this[0] = head[0] ?? 0;
  }

  /** The bytes there are so far; waits while the engine has read them all and the feed is open. */
  get length(): number {
    const v = this.#v;
    for (;;) {
      const seq = Atomics.load(v.i32, WRITE_SEQ);
      const ended = Atomics.load(v.i64, ENDED) !== 0n;
      const length = this.head.length + Number(Atomics.load(v.i64, WRITTEN));
      if (
        length > this.#consumed || ended || !this.inCopy() || this.#copyEnds >= this.copyIns()
      ) return length;
      Atomics.wait(v.i32, WRITE_SEQ, seq);
    }
  }

  /** Bytes [from, to) of the input, read in order; the ring's part is then free. */
  subarray(from: number, to: number): Uint8Array {
    const head = this.head.length;
    this.#consumed = to;
    if (to <= head) {
      const bytes = this.head.subarray(from, to);
      this.#messages.feed(bytes);
      return bytes;
    }
    const v = this.#v;
    const n = to - from;
    if (this.#scratch.length < n) this.#scratch = new Uint8Array(n);
    const out = this.#scratch.subarray(0, n);
    let at = 0;
    if (from < head) {
      out.set(this.head.subarray(from), 0);
      at = head - from;
    }
    let pos = (from + at - head) % FEED_CAPACITY;
    while (at < n) {
      const k = Math.min(n - at, FEED_CAPACITY - pos);
      out.set(v.ring.subarray(pos, pos + k), at);
      at += k;
      pos = 0;
    }
    hint.note(n);
    this.#messages.feed(out);
    Atomics.store(v.i64, READ, BigInt(to - head));
    Atomics.add(v.i32, READ_SEQ, 1);
    Atomics.notify(v.i32, READ_SEQ);
    return out;
  }
}

/**
 * The input of an exec that is not fed (every exec but a fed COPY's), as
 * PGlite reads it. The session feeds every COPY FROM STDIN it recognises;
 * one it did not (however spelled or sent) would read as its data
 * whatever came after it in the input (PostgreSQL's "unexpected message
 * type", then FATAL) or end of file (FATAL "protocol synchronization was
 * lost"), and a FATAL is an exit() inside PGlite's exec that ends the
 * backend, and with it every session of the database. So PGlite is shown
 * the input up to the next message that may start a COPY (an Execute or a
 * Query), and more only once it has taken and run all it was shown; when
 * it then asks for more while `inCopy` says the answer is inside a COPY's
 * data, and what comes next is not the COPY's own (the inline placement
 * runs a COPY with its data in one input), the next thing it reads is a
 * CopyFail. The COPY fails with an ERROR, as PostgreSQL's does when its
 * client sends one, and the input's next messages are read as they would
 * have been after it. `failed` tells the exec to end a batch left without
 * its Sync.
 */
export class UnfedInput {
  readonly 0: number;
  #bytes: Uint8Array;
  readonly #inCopy: () => boolean;
  readonly #received: () => boolean;
  /** The COPY was failed here. */
  failed = false;
  #consumed = 0;
  /** How much of the input PGlite has been shown: whole messages. */
  #shown = 0;

  /**
   * `inCopy`: the answer so far is inside a COPY's data. `received`:
   * Postgres's receive buffer holds bytes it has not taken yet (PGlite asks
   * for the length between messages, and those messages may include the
   * one that starts the COPY: nothing more is shown until they have run).
   */
  constructor(bytes: Uint8Array, watch: { inCopy: () => boolean; received: () => boolean }) {
    this.#bytes = bytes;
    this.#inCopy = watch.inCopy;
    this.#received = watch.received;
    this[0] = bytes[0] ?? 0;
  }

  get length(): number {
    if (this.#consumed < this.#shown || this.#received()) return this.#shown;
    const bytes = this.#bytes;
    const at = this.#shown;
    if (!this.failed && !copyMessageAt(bytes, at) && this.#inCopy()) {
      this.failed = true;
      this.#bytes = concat([bytes.subarray(0, at), UNFED_COPY_FAIL, bytes.subarray(at)]);
      return this.#shown = at + UNFED_COPY_FAIL.length;
    }
    // Shown up to the end of the next message that may start a COPY (an
    // Execute or a Query), or of the input.
    let end = at;
    while (end < bytes.length) {
      if (end + 5 > bytes.length) return this.#shown = bytes.length;
      const type = bytes[end];
      end = Math.min(bytes.length, end + 1 + Math.max(readInt32(bytes, end + 1), 4));
      if (type === FE.Execute || type === FE.Query) break;
    }
    return this.#shown = end;
  }

  subarray(from: number, to: number): Uint8Array {
    this.#consumed = to;
    return this.#bytes.subarray(from, to);
  }
}

/** Whether a COPY's own message begins at `at` (its data, end, or the Flush and Sync it ignores). */
function copyMessageAt(bytes: Uint8Array, at: number): boolean {
  if (at >= bytes.length) return false;
  const type = bytes[at]!;
  return isCopyData(type) || type === FE.Flush || type === FE.Sync;
}

/** The CopyFail an unfed COPY ends with: its ERROR reads "COPY from stdin failed: …". */
const UNFED_COPY_FAIL = fe.copyFail(
  "pgts did not take this statement for a COPY FROM STDIN and has no data for it",
);
