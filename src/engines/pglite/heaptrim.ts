/**
 * Gives the large free parts of PGlite's heap back to the kernel, so that
 * the memory one large statement took comes back once it has ended.
 *
 * A PostgreSQL backend's large allocations are mmap'd by glibc and
 * unmapped when freed, and its whole memory goes at its exit. PGlite's heap
 * is a WebAssembly memory, which never shrinks, and its allocator
 * (Emscripten's dlmalloc, without mmap) grows it with sbrk and never trims
 * it: `select length(repeat('x', 400000000))` left the server ~750 MB
 * larger for the rest of its life. A free chunk's bytes past its own
 * header are read by nobody (dlmalloc keeps its links in the first 32 bytes
 * and the chunk's size again in the next chunk's first word), so the whole
 * pages inside a large free chunk can be dropped with
 * madvise(MADV_DONTNEED), to be read as zeros when the allocator hands them
 * out again; dlmalloc assumes nothing of their contents.
 *
 * The free chunks are dlmalloc's: its top chunk, its designated victim and
 * the chunks of its tree bins (every free chunk of 256 bytes or more that
 * is not one of those two), all reached from `_gm_`, a static struct that
 * is not exported. It is found once by its shape (the two small bins no
 * chunk uses linked to themselves, a top inside the heap whose header holds
 * topsize), at a known address for a known pglite.wasm. Only chunks with at
 * least MIN_RELEASE (8 MB) of whole pages inside are given back: a large
 * statement's, not the ones every sort reuses.
 *
 * Runs on the thread that runs PGlite, between execs, once the engine has
 * had no exec for TRIM_DELAY_MS, or every BUSY_TRIM_TICKS of them while it
 * never rests: statements that keep reusing the same large chunks find them
 * resident. Through glibc's madvise (libc.ts); without it, nothing is given
 * back.
 */

import { type LibcFunction, openLibc } from "./libc.ts";

/** struct malloc_state (dlmalloc 2.8.6, wasm32): the offsets of the fields read. */
const TREEMAP = 4;
const DVSIZE = 8;
const TOPSIZE = 12;
const LEAST_ADDR = 16;
const DV = 20;
const TOP = 24;
const MAGIC = 36;
const SMALLBINS = 40;
const NSMALLBINS = 32;
const TREEBINS = SMALLBINS + (NSMALLBINS + 1) * 2 * 4;
const NTREEBINS = 32;
/** A chunk's fields: its size (low three bits flags), and a tree chunk's links. */
const HEAD = 4;
const FD = 8;
const CHILD0 = 16;
const CHILD1 = 20;
const SIZE_BITS = ~7;
/** The bytes at a free chunk's start that dlmalloc uses (a tree chunk's links end at 32). */
const CHUNK_FIELDS = 32;
/** More tree chunks than this and the walk stops (a heap that does not look as expected). */
const MAX_CHUNKS = 100_000;

const MADV_DONTNEED = 4;
/** The kernel's page: what madvise takes. */
const PAGE = 4096;
/**
 * A free chunk with fewer whole pages inside than this is left resident:
 * a sort's or a hash's work_mem (4MB by default) is taken again by the next
 * such statement, and faulting its pages in again would cost it more than
 * they weigh (glibc keeps such chunks too: its mmap threshold grows to the
 * sizes freed, up to 32 MB).
 */
export const MIN_RELEASE = 8 << 20;
/** The engine rests this long after its last exec before its heap is trimmed. */
const TRIM_DELAY_MS = 1000;
/** While execs never stop, the heap is trimmed every this many TRIM_DELAY_MS. */
const BUSY_TRIM_TICKS = 30;

/** `_gm_` per pglite.wasm SHA-256, where the search finds it (50 ms the first time). */
const KNOWN_STATES: Readonly<Record<string, number>> = {
  // @electric-sql/pglite 0.5.16 (PostgreSQL 18)
  "5256d9ac379f631355f41ab30291e6a6d9f854242b5ee2a2d0940e28041d3fca": 2_973_556,
};

/** Whether `p` can be a chunk of the heap: 8-aligned, between `heapBase` and its end. */
function inHeap(heap: DataView, p: number, heapBase: number): boolean {
  return p >= heapBase && (p & 7) === 0 && p + CHUNK_FIELDS <= heap.byteLength;
}

/** Whether a malloc_state of dlmalloc's shape is at `a`. */
function stateAt(heap: DataView, a: number, heapBase: number): boolean {
  if (a < 0 || (a & 3) !== 0 || a + TREEBINS + NTREEBINS * 4 > heapBase) return false;
  // Small bins 0 and 1 hold no chunk size and keep the links init_bins gave
  // them: a bin is a fake chunk whose fd and bk are itself. (Other empty
  // bins may keep links to the chunk that last left them.)
  for (const bin of [a + SMALLBINS, a + SMALLBINS + 8]) {
    if (heap.getUint32(bin + FD, true) !== bin || heap.getUint32(bin + FD + 4, true) !== bin) {
      return false;
    }
  }
  if (heap.getUint32(a + MAGIC, true) === 0) return false;
  const least = heap.getUint32(a + LEAST_ADDR, true);
  if (least < heapBase || least >= heap.byteLength) return false;
  const top = heap.getUint32(a + TOP, true);
  return inHeap(heap, top, heapBase) &&
    (heap.getUint32(top + HEAD, true) & SIZE_BITS) === heap.getUint32(a + TOPSIZE, true);
}

/**
 * The address of dlmalloc's `_gm_` below `heapBase` (static data lies
 * under it), or 0 if no struct of its shape is there, or more than one.
 * `sha` (pglite.wasm's) names a known build, whose address is checked
 * instead of searched for.
 */
export function findMallocState(heap: DataView, heapBase: number, sha: string | null): number {
  const known = sha === null ? undefined : KNOWN_STATES[sha];
  if (known !== undefined && stateAt(heap, known, heapBase)) return known;
  let found = 0;
  for (let a = 0; a + TREEBINS + NTREEBINS * 4 <= heapBase; a += 4) {
    // Small bin 0's link, cheap to test before the rest.
    if (heap.getUint32(a + SMALLBINS + FD, true) !== a + SMALLBINS) continue;
    if (!stateAt(heap, a, heapBase)) continue;
    if (found !== 0) return 0;
    found = a;
  }
  return found;
}

/**
 * The whole pages inside a free chunk at `chunk` of `size` bytes that
 * nothing reads (past its fields, short of its end, where the next chunk
 * begins), or null when fewer than `min` bytes.
 */
export function freePages(
  chunk: number,
  size: number,
  min = MIN_RELEASE,
): { from: number; to: number } | null {
  const from = Math.ceil((chunk + CHUNK_FIELDS) / PAGE) * PAGE;
  const to = Math.floor((chunk + size) / PAGE) * PAGE;
  return to - from >= min ? { from, to } : null;
}

/** The tree bin of a chunk of `size` bytes (dlmalloc's compute_tree_index, TREEBIN_SHIFT 8). */
export function treeIndex(size: number): number {
  const x = Math.floor(size / 256);
  if (x === 0) return 0;
  if (x > 0xffff) return NTREEBINS - 1;
  const k = 31 - Math.clz32(x);
  return (k << 1) + (Math.floor(size / 2 ** (k + 7)) & 1);
}

/**
 * Every free chunk of `_gm_` at `state` with `min` bytes of pages to give
 * back, as [address, size]: the top, the designated victim, and the tree bins'
 * chunks. A chunk whose header does not hold the size its list gives (or,
 * in a tree, a size of its bin) is skipped, and a tree node's children with
 * it.
 */
export function largeFreeChunks(
  heap: DataView,
  state: number,
  heapBase: number,
  min = MIN_RELEASE,
): [number, number][] {
  const out: [number, number][] = [];
  const take = (chunk: number, size: number) => {
    if (!inHeap(heap, chunk, heapBase) || chunk + size > heap.byteLength) return;
    if ((heap.getUint32(chunk + HEAD, true) & SIZE_BITS) !== size) return;
    if (freePages(chunk, size, min) !== null) out.push([chunk, size]);
  };
  take(heap.getUint32(state + TOP, true), heap.getUint32(state + TOPSIZE, true));
  const dvsize = heap.getUint32(state + DVSIZE, true);
  if (dvsize !== 0) take(heap.getUint32(state + DV, true), dvsize);
  // Each tree bin: a tree of chunks of distinct sizes, each the head of a
  // ring (by fd) of the chunks of its size.
  let seen = 0;
  const treemap = heap.getUint32(state + TREEMAP, true);
  for (let i = 0; i < NTREEBINS; i++) {
    if ((treemap & (1 << i)) === 0) continue; // empty (its root may be stale)
    const stack = [heap.getUint32(state + TREEBINS + 4 * i, true)];
    while (stack.length > 0) {
      const t = stack.pop()!;
      if (t === 0) continue;
      if (!inHeap(heap, t, heapBase) || ++seen > MAX_CHUNKS) return out;
      const size = heap.getUint32(t + HEAD, true) & SIZE_BITS;
      if (treeIndex(size) !== i) continue;
      let c = t;
      do {
        take(c, size);
        c = heap.getUint32(c + FD, true);
        if (!inHeap(heap, c, heapBase) || ++seen > MAX_CHUNKS) return out;
      } while (c !== t);
      stack.push(heap.getUint32(t + CHILD0, true), heap.getUint32(t + CHILD1, true));
    }
  }
  return out;
}

/** PGlite's heap, trimmed when the engine rests (or now and then when it never does). */
export class HeapTrimmer {
  readonly #memory: WebAssembly.Memory;
  readonly #heapBase: number;
  readonly #sha: string | null;
  readonly #madvise: LibcFunction;
  readonly #min: number;
  /** `_gm_`'s address: undefined until the first trim looks, 0 if not found. */
  #state: number | undefined;
  #timer: ReturnType<typeof setTimeout> | null = null;
  /** Execs since the timer was last armed, and ticks since the last trim. */
  #execs = 0;
  #ticks = 0;

  private constructor(
    memory: WebAssembly.Memory,
    heapBase: number,
    sha: string | null,
    madvise: LibcFunction,
    min: number,
  ) {
    this.#memory = memory;
    this.#heapBase = heapBase;
    this.#sha = sha;
    this.#madvise = madvise;
    this.#min = min;
  }

  /**
   * A trimmer of `memory` that gives back free chunks with `min` bytes of
   * whole pages inside, or null where madvise cannot be called.
   */
  static open(
    memory: WebAssembly.Memory,
    heapBase: number,
    sha: string | null,
    min = MIN_RELEASE,
  ): HeapTrimmer | null {
    const libc = openLibc({ madvise: ["buffer", "usize", "i32"] });
    return libc === null ? null : new HeapTrimmer(memory, heapBase, sha, libc.madvise, min);
  }

  /** An exec ended: the heap is trimmed once the engine has rested TRIM_DELAY_MS. */
  afterExec(): void {
    this.#execs++;
    if (this.#timer === null && this.#state !== 0) this.#arm();
  }

  #arm(): void {
    this.#execs = 0;
    this.#timer = setTimeout(() => this.#tick(), TRIM_DELAY_MS);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  #tick(): void {
    this.#timer = null;
    const rested = this.#execs === 0;
    if (rested || ++this.#ticks >= BUSY_TRIM_TICKS) {
      this.#ticks = 0;
      this.trim();
    }
    // Busy: look again; rested: the next exec arms the timer.
    if (!rested) this.#arm();
  }

  /** Gives back the large free chunks' pages now; returns how many bytes madvise was given. */
  trim(): number {
    const heap = new DataView(this.#memory.buffer);
    this.#state ??= findMallocState(heap, this.#heapBase, this.#sha);
    if (this.#state === 0) return 0;
    let bytes = 0;
    for (const [chunk, size] of largeFreeChunks(heap, this.#state, this.#heapBase, this.#min)) {
      const { from, to } = freePages(chunk, size, this.#min)!;
      const pages = new Uint8Array(this.#memory.buffer, from, to - from);
      if (this.#madvise(pages, pages.byteLength, MADV_DONTNEED) === 0) bytes += pages.byteLength;
    }
    return bytes;
  }

  close(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
