/**
 * A hint to the runtime's garbage collector while a huge answer or a huge
 * COPY streams through the engine. Every chunk on its way is a buffer of
 * its own (PGlite's writes copied out of its heap, the Worker's 256 kB
 * answers, the client's reads), garbage as soon as it has been passed on.
 * Bun's collector ran seldom while a COPY streamed (not traced why;
 * perhaps the Worker's answers, transferred from another thread, are not
 * counted), and the server's RSS grew by hundreds of MiB (+246 MiB for a
 * 200 MB COPY TO STDOUT, against PostgreSQL's +18), all of it garbage that
 * went only some seconds after the COPY. So each thread the data passes
 * through runs a full collection after every so many MiB: 16 for answers
 * (COPY TO: a result in a few tens of MiB), 64 for the COPY FROM feed
 * (each collection costs time, and COPY FROM's is bounded by its ring);
 * `PGTS_GC_HINT_MB` sets both (0: never). A collection that is only
 * started (Bun.gc(false)) left most of it: the freed memory stayed in the
 * RSS until the allocator's scavenger ran. Under Deno there is no such call
 * without `--expose-gc`, and nothing is done.
 *
 * It decides nothing and holds nothing: a count and a call.
 */

import process from "node:process";

/** PGTS_GC_HINT_MB: MiB between two collections for every hint (0: none), or null for their own. */
const SET_MIB = setMiB(process.env["PGTS_GC_HINT_MB"]);

function setMiB(value: string | undefined): number | null {
  if (value === undefined || value === "") return null;
  const mib = Number(value);
  return Number.isFinite(mib) && mib > 0 ? mib : 0;
}

/** Bun.gc(true): a full collection, done before it returns. */
const collect: (() => void) | null = (() => {
  const bun = (globalThis as { Bun?: { gc?: (force: boolean) => void } }).Bun;
  const gc = bun?.gc;
  if (typeof gc === "function") return () => gc.call(bun, true);
  const exposed = (globalThis as { gc?: () => void }).gc;
  return typeof exposed === "function" ? () => exposed() : null;
})();

/** Counts bytes streamed through one thread and runs a collection every `mib` MiB of them. */
export class CollectorHint {
  #every: number;
  #bytes = 0;

  constructor(mib: number) {
    this.#every = (SET_MIB ?? mib) * 1024 * 1024;
  }

  /** `n` more bytes went through. */
  note(n: number): void {
    if (this.#every === 0 || collect === null) return;
    this.#bytes += n;
    if (this.#bytes < this.#every) return;
    this.#bytes = 0;
    collect();
  }
}
