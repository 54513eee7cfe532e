/**
 * AllocSet, the general-purpose allocator, the pgts counterpart of
 * PostgreSQL's aset.c.
 *
 * Small requests are rounded up to a power of two from 8 bytes to the chunk
 * limit (8 KB, halved until four chunks fit in a maximum-size block) and
 * carved from the newest block; a freed chunk goes on the freelist of its
 * size class and is handed out again before any new space. Blocks double
 * from initBlockSize to maxBlockSize. A request above the chunk limit gets a
 * block of its own, given back on free. The first block, the keeper, is kept
 * across resets so a context that is reset for every query does not churn
 * ArrayBuffers. A context made with `keeper: false` (an idle backend's, which
 * must cost next to nothing) has none: its first block comes at its first
 * allocation and a reset gives every block back, blocks of a keeper size
 * going through the realm's keeper freelists (keepers.ts) so that the next
 * context to need one takes it instead of a fresh ArrayBuffer.
 *
 * Each chunk has an 8-byte header in the block just before it: capacity and
 * a live/free tag. free() checks both, so a double free, a free after reset
 * or a view into the middle of a chunk is an error, never a corrupted
 * freelist. The hot path allocates nothing but the returned view, and a view
 * coming off a freelist with the requested length is handed out again as is.
 *
 * Created with `pointers: true`, the context hands out byte offsets into its
 * arena instead (allocPtr, freePtr, reallocPtr): that mode is its base class
 * `AllocSetPointers` in aset_ptr.ts; this file chooses it at creation and
 * sends a pointer context's stats, reset and delete there.
 */

import { checkParent } from "./arena.ts";
import { ALLOCSET_NUM_FREELISTS, AllocSetPointers, freelistIndex } from "./aset_ptr.ts";
import {
  ALLOCSET_DEFAULT_SIZES,
  type BlockSizes,
  checkAllocSize,
  checkBlockSizes,
  CHUNK_HEADER_SIZE,
  type ContextStats,
  formatCounters,
  FREE_TAG,
  maxAlign,
} from "./memnodes.ts";
import { keepBuffer, takeKeeperBuffer } from "./keepers.ts";
import { type McxtState, MemoryBlock, MemoryContext, type MemoryContextOptions } from "./mcxt.ts";

/** ALLOC_CHUNK_LIMIT: the largest chunk kept on a freelist. */
const ALLOC_CHUNK_LIMIT = 8192;
/** ALLOC_CHUNK_FRACTION: at least this many maximum chunks fit in a maximum block. */
const ALLOC_CHUNK_FRACTION = 4;
/** Freed views searched for one of the requested length before making a new one. */
const REUSE_SCAN = 8;
/** Blocks up to this size keep a table of their views (see MemoryBlock.byOffset). */
const VIEW_TABLE_MAX_BLOCK = 64 * 1024;

/** Options of an AllocSet context. */
export interface AllocSetOptions extends MemoryContextOptions {
  /** Block sizes; ALLOCSET_DEFAULT_SIZES when omitted. */
  sizes?: Readonly<BlockSizes>;
  /** Hand out pointers into `memory` (allocPtr) instead of Uint8Array views. */
  pointers?: boolean;
  /**
   * False: no keeper block (see the header); the context holds no memory
   * until its first allocation and none after a reset. Views contexts only.
   */
  keeper?: boolean;
}

/** What a context starts with: empty freelists (frozen: a push to them is a bug). */
const NO_FREE_VIEWS: Uint8Array[][] = Object.freeze(
  Array.from(
    { length: ALLOCSET_NUM_FREELISTS },
    () => Object.freeze([]) as unknown as Uint8Array[],
  ),
) as Uint8Array[][];
const NO_FREE_BLOCKS = NO_FREE_VIEWS as unknown as MemoryBlock[][];

/** The buffer of a deleted context's stand-in block: no chunk can ever be in it, so one serves all. */
const NO_ROOM = new ArrayBuffer(0);
/** A context's blocks, and its blocks with view tables, before it has any: shared, never written. */
const NO_BLOCKS = new Set<MemoryBlock>();
const NO_TABLED: MemoryBlock[] = [];

/** A general-purpose memory context (AllocSetContextCreate). */
export class AllocSetContext extends AllocSetPointers {
  readonly type = "AllocSet" as const;
  readonly #registry: Map<ArrayBufferLike, MemoryBlock>;
  /** The kept first block; without a keeper, an empty stand-in never in #blocks. */
  readonly #keeper: MemoryBlock;
  readonly #keeperless: boolean;
  /** NO_BLOCKS (shared, never written) until the context has a block. */
  #blocks: Set<MemoryBlock> = NO_BLOCKS;
  /** Live blocks that keep a view table: free() looks here before chunk.buffer. */
  #tabled: MemoryBlock[] = NO_TABLED;
  // The freelists of views, shared empty ones until the first chunk is freed
  // (most contexts of a short-lived backend never free one).
  #freeViews: Uint8Array[][] = NO_FREE_VIEWS;
  #freeBlocks: MemoryBlock[][] = NO_FREE_BLOCKS;
  #active: MemoryBlock;
  /** A pointer context (see the header): every Uint8Array method refuses. */
  readonly #pointers: boolean;

  constructor(parent: MemoryContext | McxtState, name: string, options: AllocSetOptions = {}) {
    super(parent, name, options);
    const sizes = options.sizes ?? ALLOCSET_DEFAULT_SIZES;
    try {
      checkBlockSizes(sizes, name);
    } catch (e) {
      this.abandon();
      throw e;
    }
    this.#registry = this.registry;
    this.initBlockSize = sizes.initBlockSize;
    this.maxBlockSize = sizes.maxBlockSize;
    this.nextBlockSize = sizes.initBlockSize;
    let limit = ALLOC_CHUNK_LIMIT;
    while (limit + CHUNK_HEADER_SIZE > sizes.maxBlockSize / ALLOC_CHUNK_FRACTION) limit >>= 1;
    this.allocChunkLimit = limit;
    const keeperSize = sizes.minContextSize !== 0 ? sizes.minContextSize : sizes.initBlockSize;
    this.#pointers = options.pointers === true;
    this.#keeperless = options.keeper === false && !this.#pointers;
    if (this.#pointers) {
      this.openPointers(keeperSize);
      // A stand-in: Uint8Array methods refuse before touching it.
      this.#keeper = new MemoryBlock(this, new ArrayBuffer(0));
      this.#active = this.#keeper;
      return;
    }
    if (this.#keeperless) {
      // The first alloc finds no room in the stand-in and makes a block.
      this.#keeper = new MemoryBlock(this, NO_ROOM);
      this.#active = this.#keeper;
      return;
    }
    let buffer: ArrayBuffer;
    try {
      buffer = this.chargeBlock(
        keeperSize,
        keeperSize,
        true,
        takeKeeperBuffer(keeperSize),
      );
    } catch (e) {
      this.abandon();
      throw e;
    }
    this.#keeper = this.#addBlock(buffer);
    this.#active = this.#keeper;
  }

  /** The largest request served from a freelist size class. */
  get chunkLimit(): number {
    return this.allocChunkLimit;
  }

  alloc(size: number): Uint8Array {
    if (this.#pointers) this.viewsNotServed("alloc");
    if (size <= this.allocChunkLimit && (size | 0) === size && size >= 0) {
      const idx = size <= 8 ? 0 : 29 - Math.clz32(size - 1);
      const views = this.#freeViews[idx]!;
      const n = views.length;
      if (n !== 0) {
        const blocks = this.#freeBlocks[idx]!;
        let view = views[n - 1]!;
        if (view.length !== size) {
          // Prefer a recently freed view of exactly this length: handing it
          // out again costs no object at all.
          const stop = n > REUSE_SCAN ? n - REUSE_SCAN : 0;
          for (let i = n - 2; i >= stop; i--) {
            const other = views[i]!;
            if (other.length === size) {
              views[i] = view;
              view = other;
              const b = blocks[i]!;
              blocks[i] = blocks[n - 1]!;
              blocks[n - 1] = b;
              break;
            }
          }
        }
        views.pop();
        const block = blocks.pop()!;
        const offset = view.byteOffset;
        block.u32[(offset >>> 2) - 1] = block.liveTag;
        return view.length === size ? view : this.#view(block, offset, size);
      }
      const capacity = 8 << idx;
      const need = capacity + CHUNK_HEADER_SIZE;
      let block = this.#active;
      if (block.size - block.freeptr < need) block = this.#newBlock(need, size);
      const start = block.freeptr;
      block.freeptr = start + need;
      const u32 = block.u32;
      const h = start >>> 2;
      u32[h] = capacity;
      u32[h + 1] = block.liveTag;
      return this.#view(block, start + CHUNK_HEADER_SIZE, size);
    }
    return this.#allocLarge(size);
  }

  free(chunk: Uint8Array): void {
    if (this.#pointers) this.viewsNotServed("free");
    const offset = chunk.byteOffset;
    let block: MemoryBlock | undefined;
    const tabled = this.#tabled;
    for (let i = 0; i < tabled.length; i++) {
      const candidate = tabled[i]!;
      if (candidate.byOffset![offset >>> 4] === chunk) {
        block = candidate;
        break;
      }
    }
    if (block === undefined) {
      block = this.#registry.get(chunk.buffer);
      if (block === undefined || block.owner !== this) this.badChunk(chunk, "free");
    }
    const u32 = block.u32;
    const h = (offset >>> 2) - 2;
    if (
      (offset & 7) !== 0 || offset === 0 || u32[h + 1] !== block.liveTag ||
      chunk.length > u32[h]!
    ) {
      this.badChunk(chunk, "free");
    }
    const capacity = u32[h]!;
    if (capacity > this.allocChunkLimit) {
      this.#blocks.delete(block);
      this.releaseBlock(block);
      return;
    }
    u32[h + 1] = FREE_TAG;
    const idx = freelistIndex(capacity);
    this.#useFreelists();
    this.#freeViews[idx]!.push(chunk);
    this.#freeBlocks[idx]!.push(block);
  }

  realloc(chunk: Uint8Array, size: number): Uint8Array {
    if (this.#pointers) this.viewsNotServed("realloc");
    const block = this.#registry.get(chunk.buffer);
    const offset = chunk.byteOffset;
    if (block === undefined || block.owner !== this || (offset & 7) !== 0 || offset === 0) {
      this.badChunk(chunk, "realloc");
    }
    const u32 = block.u32;
    const h = (offset >>> 2) - 2;
    const capacity = u32[h]!;
    if (u32[h + 1] !== block.liveTag || chunk.length > capacity) this.badChunk(chunk, "realloc");
    checkAllocSize(size);
    // A chunk that still fits stays where it is, as in PostgreSQL; a large
    // chunk is only kept in place while it stays large.
    if (size <= capacity && (capacity <= this.allocChunkLimit || size > this.allocChunkLimit)) {
      return chunk.length === size ? chunk : this.#view(block, offset, size);
    }
    const moved = this.alloc(size);
    moved.set(chunk.length <= size ? chunk : chunk.subarray(0, size));
    this.free(chunk);
    return moved;
  }

  stats(): ContextStats {
    if (this.#pointers) return this.pointerStats();
    const counters = { nblocks: 0, freechunks: 0, totalspace: 0, freespace: 0 };
    for (const block of this.#blocks) {
      counters.nblocks++;
      counters.totalspace += block.size;
      counters.freespace += block.size - block.freeptr;
    }
    for (let idx = 0; idx < ALLOCSET_NUM_FREELISTS; idx++) {
      const n = this.#freeViews[idx]!.length;
      counters.freechunks += n;
      counters.freespace += n * ((8 << idx) + CHUNK_HEADER_SIZE);
    }
    return { counters, line: formatCounters(counters) };
  }

  protected resetSelf(): void {
    if (this.#pointers) return this.resetPointers();
    for (const block of this.#blocks) {
      if (block !== this.#keeper) this.#giveBack(block);
    }
    this.#blocks.clear();
    if (!this.#keeperless) this.#track(this.#keeper);
    this.#tabled.length = 0;
    if (this.#keeper.byOffset !== null) this.#table(this.#keeper);
    this.#keeper.markEmpty();
    this.#active = this.#keeper;
    this.nextBlockSize = this.initBlockSize;
    this.#clearFreelists();
  }

  protected deleteSelf(): void {
    if (this.#pointers) return this.deletePointers();
    for (const block of this.#blocks) {
      if (block !== this.#keeper) this.#giveBack(block);
    }
    if (!this.#keeperless) this.releaseBlock(this.#keeper);
    this.#blocks.clear();
    this.#tabled.length = 0;
    this.#clearFreelists();
    keepBuffer(this.#keeper);
    // An empty stand-in: the next alloc takes the slow path and is refused.
    this.#active = new MemoryBlock(this, NO_ROOM);
  }

  protected isEmptySelf(): boolean {
    if (this.#pointers) return this.isEmptyPointers();
    if (this.#keeperless) return this.#blocks.size === 0;
    return this.#blocks.size === 1 && this.#keeper.freeptr === 0;
  }

  /**
   * Releases a block at a reset or delete; a keeperless context's block of a
   * keeper size goes to the keeper freelists (keepers.ts).
   */
  #giveBack(block: MemoryBlock): void {
    this.releaseBlock(block);
    if (this.#keeperless) keepBuffer(block);
  }

  #view(block: MemoryBlock, offset: number, size: number): Uint8Array {
    const view = new Uint8Array(block.buffer, offset, size);
    let table = block.byOffset;
    if (table === null && block.size <= VIEW_TABLE_MAX_BLOCK) {
      // Made at the block's first chunk, not with the block: most contexts
      // of a short-lived backend never hand out a chunk.
      table = block.byOffset = new Array(block.size >>> 4);
      this.#table(block);
    }
    if (table !== null) table[offset >>> 4] = view;
    return view;
  }

  /** Adds a block to the context's set (made at its first block: a context may never get one). */
  #track(block: MemoryBlock): void {
    if (this.#blocks === NO_BLOCKS) this.#blocks = new Set();
    this.#blocks.add(block);
  }

  /** Adds a block with a view table to those free() searches first. */
  #table(block: MemoryBlock): void {
    if (this.#tabled === NO_TABLED) this.#tabled = [];
    this.#tabled.push(block);
  }

  /** Registers a new block for small chunks and makes it known to free(). */
  #addBlock(buffer: ArrayBuffer): MemoryBlock {
    const block = new MemoryBlock(this, buffer);
    this.registerBlock(block);
    this.#track(block);
    return block;
  }

  /** About to put a view on a freelist: the context's own lists from now on. */
  #useFreelists(): void {
    this.freelistsUsed = true;
    if (this.#freeViews !== NO_FREE_VIEWS) return;
    this.#freeViews = Array.from({ length: ALLOCSET_NUM_FREELISTS }, () => []);
    this.#freeBlocks = Array.from({ length: ALLOCSET_NUM_FREELISTS }, () => []);
  }

  #clearFreelists(): void {
    if (!this.freelistsUsed) return;
    this.freelistsUsed = false;
    for (let idx = 0; idx < ALLOCSET_NUM_FREELISTS; idx++) {
      this.#freeViews[idx]!.length = 0;
      this.#freeBlocks[idx]!.length = 0;
    }
  }

  /** A request above the chunk limit: a block of its own. */
  #allocLarge(size: number): Uint8Array {
    checkAllocSize(size);
    if (size <= this.allocChunkLimit) return this.alloc(size);
    const capacity = maxAlign(size);
    const buffer = this.chargeBlock(capacity + CHUNK_HEADER_SIZE, size);
    const block = new MemoryBlock(this, buffer);
    block.u32[0] = capacity;
    block.u32[1] = block.liveTag;
    block.freeptr = buffer.byteLength;
    this.registerBlock(block);
    this.#track(block);
    return new Uint8Array(buffer, CHUNK_HEADER_SIZE, size);
  }

  /**
   * Starts a new active block big enough for `need` bytes. What is left of
   * the old one is cut into power-of-two chunks for the freelists first, so
   * no space is stranded.
   */
  #newBlock(need: number, size: number): MemoryBlock {
    const old = this.#active;
    let avail = old.size - old.freeptr;
    while (avail >= 8 + CHUNK_HEADER_SIZE) {
      let idx = 28 - Math.clz32(avail - CHUNK_HEADER_SIZE);
      const maxIdx = freelistIndex(this.allocChunkLimit);
      if (idx > maxIdx) idx = maxIdx;
      const capacity = 8 << idx;
      const start = old.freeptr;
      old.u32[start >>> 2] = capacity;
      old.u32[(start >>> 2) + 1] = FREE_TAG;
      this.#useFreelists();
      this.#freeViews[idx]!.push(this.#view(old, start + CHUNK_HEADER_SIZE, capacity));
      this.#freeBlocks[idx]!.push(old);
      old.freeptr = start + capacity + CHUNK_HEADER_SIZE;
      avail -= capacity + CHUNK_HEADER_SIZE;
    }
    let blockSize = this.nextBlockSize;
    this.nextBlockSize = Math.min(blockSize * 2, this.maxBlockSize);
    while (blockSize < need) blockSize *= 2;
    const reuse = this.#keeperless ? takeKeeperBuffer(blockSize) : undefined;
    const block = this.#addBlock(this.chargeBlock(blockSize, size, false, reuse));
    this.#active = block;
    return block;
  }
}

/** Creates an AllocSet context under `parent` (AllocSetContextCreate). */
export function allocSetContextCreate(
  parent: MemoryContext,
  name: string,
  options: AllocSetOptions = {},
): AllocSetContext {
  checkParent(parent, name);
  return new AllocSetContext(parent, name, options);
}
