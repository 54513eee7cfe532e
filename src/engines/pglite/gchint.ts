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
 * (each collection costs time, and COPY FROM's is bounded by its ring),
 * and the feed a young collection every 4 MiB besides: the chunks are young
 * garbage, and 48 MB through `\copy from` peaked 170–260 MiB above idle
 * without it, 90–105 with it, in the same time (tests/e2e/hostile's
 * huge-COPY test; a full collection every 16 MiB gave ~40 MiB but took
 * 15% longer);
 * `PGTS_GC_HINT_MB` sets both (0: never). A collection that is only
 * started (Bun.gc(false)) left most of it: the freed memory stayed in the
 * RSS until the allocator's scavenger ran. Under Deno there is no such call
 * without `--expose-gc`: the children of the Deno subprocess launcher have
 * it (src/adapters/deno/launcher.ts), a server run by `deno run` does not,
 * and there nothing is done.
 *
 * It decides nothing and holds nothing: a count and a call.
 *
 * YoungCollections is the other hint, for the steady stream of small
 * statements. Each leaves a few KiB of garbage (promises, closures, small
 * buffers) on the main thread and on the engine's. JavaScriptCore paces
 * its collections by the size of the heap, and counts what ArrayBuffers
 * hold as heap: the Worker reports ~530 MiB of it (PGlite's WebAssembly
 * memory), the main thread ~130 MiB. The garbage piled up to hundreds of
 * MiB between collections (with the allocator's purge off,
 * MIMALLOC_PURGE_DELAY=-1, the RSS rose to 1.2 GiB in 40 s of pgbench),
 * and by then the allocator had given the freed blocks back to the
 * kernel, so every new block was fresh pages again: select-only at `-c 4`
 * took 67,000 page faults in 4 s (~30 KiB a transaction), and the threads
 * that fault pages in ahead (JSCWarmUp) and give them back (mi-scavenger)
 * took a quarter of the server's CPU. A young collection every
 * EXECS_PER_YOUNG_COLLECTION execs on each thread (0.7–1 ms each in a server
 * under pgbench, ~1 µs a statement) frees the garbage while its blocks
 * are still the collector's, and they are reused as they are: 400 page
 * faults in 4 s, 30% less CPU per transaction.
 * Bun only (`bun:jsc`'s edenGC); Deno's V8 sizes its young generation by
 * itself.
 */

import process from "node:process";

/** PGTS_GC_HINT_MB: MiB between two collections for every hint (0: none), or null for their own. */
const SET_MIB = setAmount(process.env["PGTS_GC_HINT_MB"]);

/** A PGTS_GC_* setting: null when unset, 0 (never) when not a positive number. */
function setAmount(value: string | undefined): number | null {
  if (value === undefined || value === "") return null;
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** Execs between two young collections (YoungCollections); PGTS_GC_YOUNG_EXECS sets it (0: none). */
const EXECS_PER_YOUNG_COLLECTION = 1000;

/** Bun.gc(true): a full collection, done before it returns. */
const collect: (() => void) | null = (() => {
  const bun = (globalThis as { Bun?: { gc?: (force: boolean) => void } }).Bun;
  const gc = bun?.gc;
  if (typeof gc === "function") return () => gc.call(bun, true);
  const exposed = (globalThis as { gc?: () => void }).gc;
  return typeof exposed === "function" ? () => exposed() : null;
})();

/**
 * Counts bytes streamed through one thread and runs a collection every
 * `mib` MiB of them, and a young one every `youngMib` MiB (0: none) where
 * the runtime has one.
 */
export class CollectorHint {
  #every: number;
  #bytes = 0;
  #youngEvery: number;
  #youngBytes = 0;

  constructor(mib: number, youngMib = 0) {
    this.#every = (SET_MIB ?? mib) * 1024 * 1024;
    this.#youngEvery = SET_MIB === 0 || collectYoung === null ? 0 : youngMib * 1024 * 1024;
  }

  /** `n` more bytes went through. */
  note(n: number): void {
    if (this.#youngEvery !== 0) {
      this.#youngBytes += n;
      if (this.#youngBytes >= this.#youngEvery) {
        this.#youngBytes = 0;
        collectYoung!();
      }
    }
    if (this.#every === 0 || collect === null) return;
    this.#bytes += n;
    if (this.#bytes < this.#every) return;
    this.#bytes = 0;
    collect();
  }
}

/** bun:jsc's edenGC: a young-generation collection, done before it returns; null elsewhere. */
export const collectYoung: (() => void) | null = (() => {
  const require = (import.meta as { require?: (id: string) => unknown }).require;
  if (typeof require !== "function") return null;
  try {
    const jsc = require("bun:jsc") as { edenGC?: () => void };
    return typeof jsc.edenGC === "function" ? jsc.edenGC : null;
  } catch {
    return null;
  }
})();

/** Runs a young collection on this thread every so many execs (see the header). */
export class YoungCollections {
  #collect: (() => void) | null;
  #every: number;
  #count = 0;

  constructor(collect: (() => void) | null = collectYoung) {
    const every = setAmount(process.env["PGTS_GC_YOUNG_EXECS"]) ?? EXECS_PER_YOUNG_COLLECTION;
    this.#collect = collect;
    this.#every = collect !== null ? every : 0;
  }

  /** One more exec on this thread. */
  note(): void {
    if (this.#every === 0 || ++this.#count < this.#every) return;
    this.#count = 0;
    this.#collect!();
  }
}
