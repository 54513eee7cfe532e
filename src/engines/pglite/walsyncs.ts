/**
 * Group commit for an engine in a Worker: the WAL's deferred fdatasyncs,
 * asked for by the Worker (walflush.ts) and run on the engine's thread,
 * which is free while the Worker runs a statement (workerexecutor.ts).
 *
 * The two threads share one small table (`WalRequests`) and send each other
 * no message per commit. The Worker, at each deferred fdatasync, notes the
 * segment in a slot with the ticket, raises `requested`, and wakes the
 * engine's thread only if that thread sleeps on the table. The engine's
 * thread runs rounds (`WalSyncs`): a round reads `requested` as it starts,
 * fdatasyncs every segment a ticket above `durable` was noted in, and then
 * makes everything up to what it read durable. So a round covers every
 * commit whose WAL was written before it began — also those of statements
 * still running on the Worker, and those whose answer this thread has not
 * seen yet — and the next round starts as soon as one ends, if tickets
 * were issued meanwhile.
 *
 * Why no messages: a message per commit each way (the request, and its
 * end back to the Worker) cost each thread a task per commit, on a thread
 * that runs every session's statements in series. Every commit made the
 * engine slower, the disk got ahead of it, and rounds shrank to one or two
 * commits (0.45-0.83 fsyncs per commit at 8 clients, against 0.29 with
 * the engine inline and PostgreSQL's 0.35, on the same disk).
 *
 * Ordering. The Worker writes a slot's path before its generation and
 * both before its ticket, and the ticket before `requested` (Atomics
 * are sequentially consistent): whoever reads `requested` = N and then the
 * slots sees every segment written for tickets up to N, and the fdatasync
 * that starts after that read covers the WAL Postgres wrote before it
 * asked. A slot is given to another segment only once its ticket is
 * durable, so a slot read during a round is never rewritten under it.
 *
 * Owns its own descriptors of the segments, and never closes one with an
 * fdatasync running: its number could be reused by another file, whose
 * sync would then count as this one's. A failed fdatasync is a PANIC:
 * `failed` is set for the Worker (which then refuses every later ticket)
 * and nothing is ever made durable again.
 */

import { closeSync, fdatasync, openSync } from "node:fs";

/** Segments that may have tickets not yet durable at once (a segment switch makes two). */
const SLOTS = 4;
/** Int32 cells. */
const KICK = 0;
const FAILED = 1;
const SLEEPING = 2;
/** BigInt64 cells. */
const REQUESTED = 2;
const DURABLE = 3;
const HEADER_BYTES = 32;
/** Per slot: its ticket (BigInt64), generation and path length (Int32), path bytes. */
const SLOT_PATH_BYTES = 4096;
const SLOT_BYTES = 16 + SLOT_PATH_BYTES;

export const WAL_REQUESTS_BYTES = HEADER_BYTES + SLOTS * SLOT_BYTES;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A segment the engine's thread must fdatasync: its slot, the slot's generation, its host path. */
export interface WalSegment {
  readonly slot: number;
  readonly generation: number;
  readonly path: string;
}

/** The table shared by the Worker (which asks) and the engine's thread (which syncs). */
export class WalRequests {
  readonly buffer: SharedArrayBuffer;
  readonly #i32: Int32Array;
  readonly #i64: BigInt64Array;
  readonly #bytes: Uint8Array;
  /** The Worker's side: which slot each segment path has. */
  #slotOf = new Map<string, number>();

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(WAL_REQUESTS_BYTES)) {
    this.buffer = buffer;
    this.#i32 = new Int32Array(buffer);
    this.#i64 = new BigInt64Array(buffer);
    this.#bytes = new Uint8Array(buffer);
  }

  /** The last ticket asked for. */
  get requested(): number {
    return Number(Atomics.load(this.#i64, REQUESTED));
  }

  /** Every ticket up to this one is on disk. */
  get durable(): number {
    return Number(Atomics.load(this.#i64, DURABLE));
  }

  /** Whether an fdatasync failed (a PANIC): nothing is made durable again. */
  get failed(): boolean {
    return Atomics.load(this.#i32, FAILED) !== 0;
  }

  /**
   * The Worker: ticket `ticket` needs the segment at `path`. False when
   * every slot holds a segment with tickets not yet durable (the caller
   * syncs them itself, raises `durable`, and asks again).
   */
  request(path: string, ticket: number): boolean {
    let slot = this.#slotOf.get(path);
    if (slot === undefined) {
      const durable = Atomics.load(this.#i64, DURABLE);
      for (let s = 0; s < SLOTS; s++) {
        if (Atomics.load(this.#i64, this.#ticketCell(s)) <= durable) {
          slot = s;
          break;
        }
      }
      if (slot === undefined) return false;
      for (const [p, s] of this.#slotOf) if (s === slot) this.#slotOf.delete(p);
      const encoded = encoder.encode(path);
      if (encoded.length > SLOT_PATH_BYTES) {
        throw new RangeError(`WAL segment path is longer than ${SLOT_PATH_BYTES} bytes: ${path}`);
      }
      const at = HEADER_BYTES + slot * SLOT_BYTES;
      this.#bytes.set(encoded, at + 16);
      this.#i32[(at + 12) >> 2] = encoded.length;
      Atomics.add(this.#i32, (at + 8) >> 2, 1);
      this.#slotOf.set(path, slot);
    }
    Atomics.store(this.#i64, this.#ticketCell(slot), BigInt(ticket));
    Atomics.store(this.#i64, REQUESTED, BigInt(ticket));
    Atomics.add(this.#i32, KICK, 1);
    // Only a sleeping engine thread needs the wake (a round that is running
    // reads `requested` again when it ends).
    if (Atomics.load(this.#i32, SLEEPING) !== 0) Atomics.notify(this.#i32, KICK);
    return true;
  }

  /** The engine's thread: the segments with tickets above `durable`. */
  segmentsAfter(durable: number): WalSegment[] {
    const out: WalSegment[] = [];
    const d = BigInt(durable);
    for (let s = 0; s < SLOTS; s++) {
      if (Atomics.load(this.#i64, this.#ticketCell(s)) <= d) continue;
      const at = HEADER_BYTES + s * SLOT_BYTES;
      const generation = Atomics.load(this.#i32, (at + 8) >> 2);
      const length = this.#i32[(at + 12) >> 2]!;
      out.push({
        slot: s,
        generation,
        path: decoder.decode(this.#bytes.slice(at + 16, at + 16 + length)),
      });
    }
    return out;
  }

  /** Raises `durable` to `ticket` (never lowers it): either thread. */
  noteDurable(ticket: number): void {
    const t = BigInt(ticket);
    for (;;) {
      const now = Atomics.load(this.#i64, DURABLE);
      if (now >= t || Atomics.compareExchange(this.#i64, DURABLE, now, t) === now) return;
    }
  }

  /** The engine's thread: an fdatasync failed. */
  fail(): void {
    Atomics.store(this.#i32, FAILED, 1);
  }

  /**
   * The engine's thread: resolves once a ticket above `seen` may have been
   * issued (at once if one was).
   */
  async waitBeyond(seen: number, closed: () => boolean): Promise<void> {
    for (;;) {
      const kick = Atomics.load(this.#i32, KICK);
      if (this.requested > seen || closed()) return;
      Atomics.store(this.#i32, SLEEPING, 1);
      // Asked for between the two loads above: not slept through.
      if (this.requested > seen) {
        Atomics.store(this.#i32, SLEEPING, 0);
        return;
      }
      const w = Atomics.waitAsync(this.#i32, KICK, kick);
      if (w.async) await w.value;
      Atomics.store(this.#i32, SLEEPING, 0);
    }
  }

  /** Wakes a sleeping `waitBeyond` (the engine's thread closes). */
  wake(): void {
    Atomics.add(this.#i32, KICK, 1);
    Atomics.notify(this.#i32, KICK);
  }

  #ticketCell(slot: number): number {
    return (HEADER_BYTES + slot * SLOT_BYTES) >> 3;
  }
}

/**
 * The engine's thread's rounds of fdatasyncs for one Worker (see the
 * banner). `onDurable` gets each ticket made durable; `onFailure` the
 * errno name and segment name of a failed fdatasync, once.
 */
export class WalSyncs {
  readonly requests = new WalRequests();
  onDurable: ((durable: number) => void) | null = null;
  onFailure: ((code: string, name: string) => void) | null = null;
  /** Our descriptors, by slot: the generation of the segment each is for. */
  #fds = new Map<number, { fd: number; generation: number; path: string; busy: number }>();
  #closed = false;
  #idle: (() => void) | null = null;
  #running = false;

  /** Starts watching for tickets (once). */
  start(): void {
    void this.#loop();
  }

  async #loop(): Promise<void> {
    const r = this.requests;
    while (!this.#closed && !r.failed) {
      const durable = r.durable;
      await r.waitBeyond(durable, () => this.#closed);
      if (this.#closed) break;
      this.#running = true;
      const ok = await this.#round();
      this.#running = false;
      if (!ok) break;
    }
    this.#idle?.();
  }

  /**
   * One fdatasync of each segment with tickets not yet durable; then
   * every ticket asked for before it began is durable.
   */
  #round(): Promise<boolean> {
    const r = this.requests;
    const durable = r.durable;
    const target = r.requested;
    if (target <= durable) return Promise.resolve(true);
    const segments = r.segmentsAfter(durable);
    return new Promise((resolve) => {
      let left = segments.length;
      let failure: { code: string; name: string } | null = null;
      const finish = () => {
        if (failure !== null) {
          r.fail();
          this.onFailure?.(failure.code, failure.name);
          return resolve(false);
        }
        r.noteDurable(target);
        this.onDurable?.(r.durable);
        resolve(true);
      };
      if (left === 0) return finish();
      for (const seg of segments) {
        const name = walName(seg.path);
        let open = this.#fds.get(seg.slot);
        if (open !== undefined && open.generation !== seg.generation) {
          // The slot went to the next segment: the old descriptor goes once idle.
          this.#forget(seg.slot, open);
          open = undefined;
        }
        if (open === undefined) {
          try {
            open = {
              fd: openSync(seg.path, "r+"),
              generation: seg.generation,
              path: seg.path,
              busy: 0,
            };
          } catch (e) {
            failure ??= { code: codeOf(e), name };
            if (--left === 0) finish();
            continue;
          }
          this.#fds.set(seg.slot, open);
        }
        const used = open;
        used.busy++;
        fdatasync(used.fd, (e) => {
          used.busy--;
          if (used.busy === 0 && this.#fds.get(seg.slot) !== used) closeQuietly(used.fd);
          if (e !== null) failure ??= { code: codeOf(e), name };
          if (--left === 0) finish();
        });
      }
    });
  }

  #forget(slot: number, open: { fd: number; busy: number }): void {
    this.#fds.delete(slot);
    // With an fdatasync running, its callback closes it.
    if (open.busy === 0) closeQuietly(open.fd);
  }

  /** Stops watching; closes the descriptors once no fdatasync runs. */
  async close(): Promise<void> {
    this.#closed = true;
    this.requests.wake();
    if (this.#running) await new Promise<void>((r) => (this.#idle = r));
    for (const [slot, open] of this.#fds) this.#forget(slot, open);
  }
}

/** The segment's name as Postgres's messages give it ("pg_wal/000000010000000000000001"). */
function walName(path: string): string {
  return `pg_wal/${path.slice(path.lastIndexOf("/") + 1)}`;
}

function codeOf(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "EIO";
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Nothing to release.
  }
}
