/**
 * Background fdatasyncs of WAL segments asked for by the engine's Worker
 * (walflush.ts's WalSyncer), run on the engine's thread, which is free
 * while the Worker runs a statement: group commit's disk work, for the
 * worker executor (executor.ts).
 *
 * Owns its own descriptors of the segments, and never closes one with an
 * fdatasync running: its number could be reused by another file, whose
 * sync would then count as this one's.
 */

import { closeSync, fdatasync, openSync } from "node:fs";

/**
 * The few descriptors in use are kept between rounds. One round of fdatasyncs at a time, each covering every request that came
 * while the one before ran (the Worker asks at each deferred fdatasync):
 * rounds end in ticket order, and `durableCell`, shared with the Worker,
 * says how far before the replies are sent.
 */
export class WalSyncs {
  readonly durableCell = new BigInt64Array(new SharedArrayBuffer(8));
  onDurable: ((durable: number) => void) | null = null;
  #fds = new Map<string, { fd: number; busy: number }>();
  /** Requests that came while a round ran: the next round covers them all (group commit). */
  #waiting: {
    target: number;
    segments: readonly { path: string; name: string }[];
    end: (failure: { code: string; name: string } | null) => void;
  }[] = [];
  #running = false;

  run(
    target: number,
    segments: readonly { path: string; name: string }[],
    end: (failure: { code: string; name: string } | null) => void,
  ): void {
    this.#waiting.push({ target, segments, end });
    if (!this.#running) this.#round();
  }

  /** One fdatasync of every segment the waiting requests name; then the next round. */
  #round(): void {
    const batch = this.#waiting.splice(0);
    if (batch.length === 0) {
      this.#running = false;
      return;
    }
    this.#running = true;
    const target = Math.max(...batch.map((b) => b.target));
    const segments = new Map<string, string>();
    for (const b of batch) for (const s of b.segments) segments.set(s.path, s.name);
    let left = segments.size;
    let failure: { code: string; name: string } | null = null;
    const finish = () => {
      if (failure === null) {
        noteShared(this.durableCell, target);
        this.onDurable?.(target);
      }
      for (const b of batch) b.end(failure);
      this.#round();
    };
    if (left === 0) return finish();
    for (const [path, name] of segments) {
      let open = this.#fds.get(path);
      if (open === undefined) {
        try {
          open = { fd: openSync(path, "r+"), busy: 0 };
        } catch (e) {
          failure ??= { code: codeOf(e), name };
          if (--left === 0) finish();
          continue;
        }
        this.#fds.set(path, open);
      }
      const used = open;
      used.busy++;
      fdatasync(used.fd, (e) => {
        used.busy--;
        if (e !== null) failure ??= { code: codeOf(e), name };
        if (--left === 0) finish();
      });
    }
    if (this.#fds.size > 4) {
      for (const [path, open] of this.#fds) {
        if (segments.has(path) || open.busy > 0) continue;
        this.#fds.delete(path);
        closeQuietly(open.fd);
      }
    }
  }

  close(): void {
    for (const open of this.#fds.values()) closeQuietly(open.fd);
    this.#fds.clear();
  }
}

/** Raises a shared ticket cell to `ticket` (never lowers it). */
function noteShared(cell: BigInt64Array, ticket: number): void {
  const t = BigInt(ticket);
  for (;;) {
    const now = Atomics.load(cell, 0);
    if (now >= t || Atomics.compareExchange(cell, 0, now, t) === now) return;
  }
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
