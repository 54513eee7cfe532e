/**
 * Group commit, on the thread that runs PGlite: the WAL's fdatasync taken
 * off that thread, so that the commits of many sessions share one.
 *
 * PGlite's one backend runs every session's statements in turn on one
 * thread. A commit's `XLogFlush` ends in `issue_xlog_fsync`, an
 * fdatasync(2) of the WAL segment, and done there it stops every session
 * for the ~ms the disk takes: one fsync per commit, whatever the number of
 * clients. PostgreSQL avoids that with many backends: while one waits on
 * the WAL's fsync, the others queue their commit records, and the next
 * fsync covers them all.
 *
 * Here the fdatasync of a pg_wal file returns at once (Postgres goes on
 * believing its WAL flushed) and becomes a ticket: `requested` counts them.
 * A real fdatasync of the segments written since the last one then runs on
 * the I/O thread pool (node:fs's asynchronous `fdatasync`, on a descriptor
 * of our own, so Postgres closing its own cannot race it; for a Worker, on
 * the engine's thread, asked through shared memory: walsyncs.ts); when it ends,
 * every ticket issued before it started is `durable`, and the next one
 * starts at once if more were issued meanwhile. The engine above holds
 * every answer produced after ticket N (groupcommit.ts) until `durable`
 * reaches N: nothing is acknowledged, and no data a later reader saw is
 * shown, before the WAL that holds it is on disk.
 *
 * What Postgres believes must still be true where it matters: the WAL goes
 * to disk before the data it covers (a page written before its WAL could
 * survive a power cut that the WAL does not, and be read back as valid).
 * So before any other change to the data directory — a write to a file
 * outside pg_wal (a data page, pg_xact, pg_control), a truncate, rename,
 * unlink, fallocate, or a new file (an archive_status `.ready` too) — the
 * WAL not yet durable is fdatasynced synchronously (`force`). In OLTP that
 * is rare: shared buffers absorb the pages and checkpoints are minutes
 * apart.
 *
 * A failed fdatasync is PostgreSQL's PANIC: the pages may be lost, and a
 * retry could report success for data that is gone. The flusher reports
 * it once (`onFailure`), refuses every later ticket, and the instance
 * treats it as the end of the backend; the engine ends every session and
 * the crash cycle replays the WAL from what the disk kept.
 */

import { closeSync, fdatasync, fdatasyncSync, openSync } from "node:fs";
import type { WalRequests } from "./walsyncs.ts";

/** A WAL segment with a fdatasync deferred: our own descriptor of it, and its name for messages. */
interface Segment {
  readonly fd: number;
  /** As Postgres names it, relative to the data directory ("pg_wal/000000010000000000000001"). */
  readonly name: string;
  /** Its host path. */
  readonly path: string;
}

/** strerror's text for what fdatasync(2) reports (musl's, as PGlite's own messages say it). */
const STRERROR: Readonly<Record<string, string>> = {
  EIO: "I/O error",
  ENOSPC: "No space left on device",
  EDQUOT: "Quota exceeded",
  EROFS: "Read-only file system",
  EBADF: "Bad file descriptor",
  EINVAL: "Invalid argument",
};

export class WalFlusher {
  /** fdatasync calls of WAL files deferred so far: the last ticket issued. */
  requested = 0;
  /** Every ticket up to this one is on disk. */
  durable = 0;
  /** The PANIC's message once an fdatasync failed. */
  failed: string | null = null;
  /** Called (on this thread) each time `durable` moves. */
  onProgress: ((durable: number) => void) | null = null;
  /** Called once, when an fdatasync fails. */
  onFailure: ((message: string) => void) | null = null;
  /** Real fdatasync rounds: in the background, and forced (WAL before data). */
  readonly stats = { background: 0, forced: 0 };

  /** Real files (their host paths) written and deferred since the last real fdatasync started. */
  #dirty = new Map<string, Segment>();
  /**
   * The real fdatasyncs under way: the ticket each completes and the
   * segments it covers. One at a time (the next covers what was deferred
   * meanwhile); none with `requests`.
   */
  #flights = new Set<{ target: number; segments: Segment[] }>();
  /** Our descriptors, by host path. */
  #open = new Map<string, Segment>();
  #closed = false;
  #idle: (() => void) | null = null;
  readonly #requests: WalRequests | null;

  /**
   * `requests`: a Worker's table shared with the engine's thread, which
   * runs the background fdatasyncs (walsyncs.ts); this thread's loop runs
   * a completion only between execs, so a long statement would hold every
   * answer waiting for a commit already on disk. Without it, they run on
   * this thread's I/O pool.
   */
  constructor(options: { requests?: WalRequests } = {}) {
    this.#requests = options.requests ?? null;
  }

  /**
   * What the engine's thread made durable, or a failure it met. Not
   * `onProgress`: that thread knows, and nobody here waits for it.
   */
  #pollSynced(): void {
    const r = this.#requests;
    if (r === null || this.failed !== null) return;
    if (r.failed) {
      // The engine's thread reported the PANIC with its errno and segment.
      this.failed = "the WAL could not be made durable";
      this.#dirty.clear();
      this.onFailure?.(this.failed);
      return;
    }
    const synced = r.durable;
    if (synced <= this.durable) return;
    this.durable = synced;
    if (this.durable >= this.requested) this.#dirty.clear();
  }

  /**
   * Postgres asked for the fdatasync of the WAL segment at `hostPath`:
   * defers it (0) or answers the errno name of a failure that already
   * happened.
   */
  defer(hostPath: string, name: string): string | null {
    if (this.failed !== null) return "EIO";
    let seg = this.#open.get(hostPath);
    if (seg === undefined) {
      try {
        seg = { fd: openSync(hostPath, "r+"), name, path: hostPath };
      } catch (e) {
        return errorCode(e);
      }
      this.#open.set(hostPath, seg);
      this.#dirty.set(hostPath, seg);
      this.#forgetClosedSegments();
    }
    this.#dirty.set(hostPath, seg);
    this.requested++;
    const r = this.#requests;
    if (r === null) {
      this.#kick();
      return null;
    }
    this.#pollSynced();
    if (this.failed !== null) return "EIO";
    // Every slot holds a segment not yet durable: made durable here.
    if (!r.request(hostPath, this.requested) && !this.force()) return "EIO";
    return null;
  }

  /** Whether a ticket is not durable yet. */
  get pending(): boolean {
    if (this.requested > this.durable) this.#pollSynced();
    return this.requested > this.durable;
  }

  /**
   * Makes every ticket durable now, on this thread (WAL before data: see
   * the banner). False when the fdatasync failed (the PANIC is reported).
   */
  force(): boolean {
    if (this.failed !== null) return false;
    if (!this.pending) return true;
    const target = this.requested;
    const segments = new Set(this.#dirty.values());
    for (const f of this.#flights) for (const s of f.segments) segments.add(s);
    this.#dirty.clear();
    this.stats.forced++;
    for (const s of segments) {
      try {
        fdatasyncSync(s.fd);
      } catch (e) {
        this.#fail(s.name, e);
        return false;
      }
    }
    this.#requests?.noteDurable(target);
    this.#advance(target);
    return true;
  }

  /** Waits for the fdatasync under way, then closes our descriptors. */
  async close(): Promise<void> {
    if (this.#flights.size > 0) await new Promise<void>((r) => (this.#idle = r));
    this.#closed = true;
    for (const s of this.#open.values()) {
      try {
        closeSync(s.fd);
      } catch {
        // Already gone with the process's files: nothing to release.
      }
    }
    this.#open.clear();
  }

  /** Starts a real fdatasync of the dirty segments unless one is under way. */
  #kick(): void {
    if (this.#closed || this.failed !== null) return;
    if (this.#flights.size > 0) return;
    if (this.#dirty.size === 0) {
      if (this.#flights.size === 0) {
        this.#idle?.();
        this.#idle = null;
      }
      return;
    }
    const target = this.requested;
    const segments = [...this.#dirty.values()];
    this.#dirty.clear();
    const flight = { target, segments };
    this.#flights.add(flight);
    this.stats.background++;
    const finish = (error: { name: string; e: unknown } | null) => {
      this.#flights.delete(flight);
      if (error !== null) this.#fail(error.name, error.e);
      else this.#advance(target);
      this.#kick();
    };
    let left = segments.length;
    let error: { name: string; e: unknown } | null = null;
    for (const seg of segments) {
      fdatasync(seg.fd, (e) => {
        if (e !== null && error === null) error = { name: seg.name, e };
        if (--left === 0) finish(error);
      });
    }
  }

  #advance(target: number): void {
    if (target <= this.durable) return;
    this.durable = target;
    this.onProgress?.(target);
  }

  #fail(name: string, e: unknown): void {
    if (this.failed !== null) return;
    this.failed = fdatasyncFailure(name, errorCode(e));
    // The engine's thread makes nothing durable after it either.
    this.#requests?.fail();
    this.#dirty.clear();
    this.onFailure?.(this.failed);
    this.#idle?.();
    this.#idle = null;
  }

  /**
   * Keeps our descriptors to the segments still in use: a segment is
   * written for 16 MB of WAL, then Postgres moves on; the old one's
   * descriptor goes once it is neither dirty nor being synced.
   */
  #forgetClosedSegments(): void {
    if (this.#open.size <= 4) return;
    const keep = new Set<Segment>();
    for (const f of this.#flights) for (const s of f.segments) keep.add(s);
    for (const s of this.#dirty.values()) keep.add(s);
    for (const [path, s] of this.#open) {
      if (keep.has(s)) continue;
      this.#open.delete(path);
      try {
        closeSync(s.fd);
      } catch {
        // Nothing to release.
      }
    }
  }
}

/** PostgreSQL's PANIC text for a failed fdatasync of the WAL file `name`. */
export function fdatasyncFailure(name: string, code: string): string {
  return `could not fdatasync file "${name}": ${STRERROR[code] ?? code}`;
}

function errorCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "EIO";
}

/** wal_writer_delay in ms (PostgreSQL's default 200 ms; a bare number is ms, as in PostgreSQL). */
export function walWriterDelayMs(value: string | undefined): number {
  const m = /^\s*(\d+)\s*(ms|s|min)?\s*$/.exec(value ?? "");
  if (m === null) return 200;
  const n = Number(m[1]) * (m[2] === "s" ? 1000 : m[2] === "min" ? 60_000 : 1);
  return Math.min(Math.max(n, 1), 10_000);
}

/** The exports of PGlite's WASM the WAL writer calls (xloginsert.c, xlog.c). */
interface XLogExports {
  XLogBeginInsert(): void;
  XLogInsert(rmid: number, info: number): bigint;
  XLogFlush(record: bigint): void;
}

/** RM_XLOG_ID and its XLOG_NOOP record (rmgrlist.h, pg_control.h): replay does nothing. */
const RM_XLOG_ID = 0;
const XLOG_NOOP = 0x20;

/**
 * PostgreSQL's WAL writer, for `synchronous_commit = off`. An asynchronous
 * commit leaves its commit record in the WAL buffers, and PGlite's single
 * backend has no walwriter process to write them out: they would reach
 * the disk only with the next synchronous commit, a checkpoint or a segment
 * switch. So every `wal_writer_delay`, if a statement ran since the last
 * time, and none runs now, this flushes the WAL up to its end, which makes
 * the window of lost asynchronous commits PostgreSQL's (about three times
 * wal_writer_delay). Its end is not exported, so it inserts an XLOG_NOOP
 * record (24 bytes) and flushes up to that; the flush's fdatasync is a
 * ticket like a commit's (WalFlusher), done off the thread.
 *
 * Must only run between execs: Postgres is then idle, waiting for input.
 *
 * An error raised here is a PANIC: the flush writes the WAL inside a
 * critical section, and a new segment on a full disk fails there. Postgres
 * unwinds no further than this call, so its WAL locks stay taken and the
 * next statement would spin on them for ever, holding the engine. It is
 * reported (`onFailure`) as the end of the backend, as a failed fdatasync
 * is, and the crash cycle reopens the cluster.
 */
export class WalWriter {
  #timer: ReturnType<typeof setInterval>;
  #dirty = false;
  #broken = false;

  constructor(
    exports: unknown,
    delayMs: number,
    options: { idle: () => boolean; onFailure: (message: string) => void },
  ) {
    const { idle, onFailure } = options;
    const ex = exports as Partial<XLogExports>;
    const usable = typeof ex.XLogBeginInsert === "function" &&
      typeof ex.XLogInsert === "function" && typeof ex.XLogFlush === "function";
    this.#timer = setInterval(() => {
      if (!usable || this.#broken || !this.#dirty || !idle()) return;
      this.#dirty = false;
      try {
        ex.XLogBeginInsert!();
        ex.XLogFlush!(ex.XLogInsert!(RM_XLOG_ID, XLOG_NOOP));
      } catch (e) {
        this.#broken = true;
        // PostgreSQL's own message does not come back from a call outside
        // an exec: what reaches here is PGlite's error in unwinding it.
        const text = e instanceof Error ? e.message : String(e);
        onFailure(
          `WAL writer could not flush the WAL (a full disk, or an I/O error; PGlite: ${text})`,
        );
      }
    }, delayMs);
    // Never what keeps the process alive.
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /** A statement ran: there may be WAL to flush at the next round. */
  noteExec(): void {
    this.#dirty = true;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
