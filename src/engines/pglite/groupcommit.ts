/**
 * Group commit, on the engine's side: no answer leaves before the WAL it
 * depends on is on disk.
 *
 * The thread that runs PGlite defers the WAL's fdatasync and does it off
 * that thread (walflush.ts), so the next session's statements run while the
 * disk works. Each fdatasync Postgres asked for is a ticket; every chunk of
 * an answer comes stamped with the last ticket issued when it was produced
 * (`WalProgress.requested`), and is released to its client only once the
 * tickets up to its stamp are `durable`. That holds back the answer to a
 * COMMIT (or to an autocommit statement that wrote) until its commit record
 * is on disk, as PostgreSQL's `synchronous_commit = on` does; and it holds
 * back, just as long, every answer produced after it — a reader's too,
 * which may show the data of that commit. One real fdatasync releases all
 * the answers that waited for it: commits that arrive together share it.
 *
 * Each session has one gate (`AnswerGate`) through which all its output
 * goes — answers, notifications, pgts's own messages — so that holding one
 * never reorders what the client receives. A session's `exec` resolves only
 * when its gate is empty, but the engine is given to the next session as
 * soon as the statement is over: that is the point.
 *
 * One answer shows nothing of any commit and is never held when nothing is
 * held before it: BEGIN's (CommandComplete `BEGIN` and ReadyForQuery, with
 * at most the extended protocol's ParseComplete/BindComplete/NoData). A
 * transaction block keeps the engine from its BEGIN to its end, so holding
 * that answer would leave the engine idle for the whole fdatasync; let
 * through, the block's first statement runs while the disk works.
 *
 * If the fdatasync fails (a PANIC), held answers are never released: the
 * sessions end with the engine (FATAL), as after any PANIC.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import { BE } from "../../core/protocol/constants.ts";

interface Waiter {
  readonly ticket: number;
  readonly resolve: () => void;
  readonly reject: (e: PgError) => void;
}

/** What the engine's thread knows of the WAL tickets (the executor keeps it up to date). */
export class WalProgress {
  /** The last ticket issued by the answers seen so far. */
  requested = 0;
  /** Every ticket up to this one is on disk. */
  durable = 0;
  failed: PgError | null = null;
  #waiters: Waiter[] = [];

  /** Whether an answer stamped now must wait. */
  get behind(): boolean {
    return this.requested > this.durable || this.failed !== null;
  }

  noteRequested(ticket: number): void {
    if (ticket > this.requested) this.requested = ticket;
  }

  noteDurable(ticket: number): void {
    if (ticket <= this.durable) return;
    this.durable = ticket;
    if (ticket > this.requested) this.requested = ticket;
    const due = this.#waiters.filter((w) => w.ticket <= ticket);
    if (due.length === 0) return;
    this.#waiters = this.#waiters.filter((w) => w.ticket > ticket);
    for (const w of due) w.resolve();
  }

  /** A deferred fdatasync failed: nothing waiting is ever released. */
  fail(message: string): void {
    if (this.failed !== null) return;
    this.failed = new PgError(
      ERRCODE.CRASH_SHUTDOWN,
      "terminating connection because the engine failed",
      { severity: "FATAL", detail: `PANIC: ${message}` },
    );
    for (const w of this.#waiters.splice(0)) w.reject(this.failed);
  }

  /** Resolves once `ticket` is durable. */
  waitFor(ticket: number): Promise<void> {
    if (this.failed !== null) return Promise.reject(this.failed);
    if (ticket <= this.durable) return Promise.resolve();
    return new Promise((resolve, reject) => this.#waiters.push({ ticket, resolve, reject }));
  }
}

interface Held {
  readonly stamp: number;
  readonly bytes: Uint8Array;
  readonly to: (bytes: Uint8Array) => void | Promise<void>;
}

/** One session's output, in order, each part released once the WAL it depends on is durable. */
export class AnswerGate {
  readonly #wal: WalProgress;
  #held: Held[] = [];
  #waiting = false;
  #drained: { resolve: () => void; reject: (e: PgError) => void }[] = [];

  constructor(wal: WalProgress) {
    this.#wal = wal;
  }

  /**
   * Sends `bytes` to `to` now, or once the WAL stamped now is durable and
   * what was held before went. A promise back: the caller should produce no
   * more until it resolves (`to` was full, or the bytes are held).
   */
  send(bytes: Uint8Array, to: (bytes: Uint8Array) => void | Promise<void>): void | Promise<void> {
    const wal = this.#wal;
    if (this.#held.length === 0 && (!wal.behind || (wal.failed === null && onlyBegin(bytes)))) {
      return to(bytes);
    }
    // Held bytes may be a view of a buffer that is reused: keep a copy.
    this.#held.push({ stamp: wal.requested, bytes: bytes.slice(), to });
    this.#wait();
    return this.drained().catch(() => {});
  }

  /** Resolves when nothing is held; rejects if what is held can never go. */
  drained(): Promise<void> {
    if (this.#held.length === 0) return Promise.resolve();
    if (this.#wal.failed !== null) return Promise.reject(this.#wal.failed);
    return new Promise((resolve, reject) => this.#drained.push({ resolve, reject }));
  }

  /** Runs `fn` after what is held went (at once if nothing is held or it never will). */
  afterDrain(fn: () => void): void {
    if (this.#held.length === 0 || this.#wal.failed !== null) {
      // At once: after a PANIC the engine's process may exit right after this.
      this.#held = [];
      fn();
      return;
    }
    this.drained().then(fn, () => {
      this.#held = [];
      fn();
    });
  }

  #wait(): void {
    if (this.#waiting) return;
    const head = this.#held[0];
    if (head === undefined) return;
    this.#waiting = true;
    this.#wal.waitFor(head.stamp).then(
      () => {
        this.#waiting = false;
        this.#release();
      },
      (e: PgError) => {
        this.#waiting = false;
        this.#held = [];
        for (const d of this.#drained.splice(0)) d.reject(e);
      },
    );
  }

  #release(): void {
    const durable = this.#wal.durable;
    let n = 0;
    while (n < this.#held.length && this.#held[n]!.stamp <= durable) n++;
    const due = this.#held.splice(0, n);
    for (const h of due) h.to(h.bytes);
    if (this.#held.length > 0) {
      this.#wait();
      return;
    }
    for (const d of this.#drained.splice(0)) d.resolve();
  }
}

const BEGIN_TAG = new TextEncoder().encode("BEGIN\0");

/**
 * Whether backend bytes are only the answer to BEGIN: CommandComplete
 * `BEGIN`, ReadyForQuery, and the extended protocol's ParseComplete,
 * BindComplete and NoData.
 */
export function onlyBegin(buf: Uint8Array): boolean {
  let begin = false;
  let at = 0;
  while (at + 5 <= buf.length) {
    const type = buf[at]!;
    const len =
      ((buf[at + 1]! << 24) | (buf[at + 2]! << 16) | (buf[at + 3]! << 8) | buf[at + 4]!) >>> 0;
    const end = at + 1 + len;
    if (end > buf.length) return false;
    if (type === BE.CommandComplete) {
      if (len !== 4 + BEGIN_TAG.length) return false;
      for (let i = 0; i < BEGIN_TAG.length; i++) if (buf[at + 5 + i] !== BEGIN_TAG[i]) return false;
      begin = true;
    } else if (
      type !== BE.ReadyForQuery && type !== BE.ParseComplete && type !== BE.BindComplete &&
      type !== BE.NoData
    ) return false;
    at = end;
  }
  return begin && at === buf.length;
}
