/**
 * The pointer mode of AllocSet (aset.ts): what an AllocSet context created
 * with `pointers: true` hands out instead of Uint8Array views, byte offsets
 * into its arena (allocPtr, freePtr, reallocPtr). `AllocSetPointers` is the
 * base class of `AllocSetContext` and owns the pointer half of its state,
 * and what both halves share: the size classes (freelistIndex), the chunk
 * limit, the block sizes and the freelist flag. aset.ts owns the views half,
 * works out the chunk limit and block sizes, and decides at creation which
 * half a context uses. A views context never touches the pointer state
 * here, and nothing here touches a view.
 *
 * The same size classes, headers, block sizes and keeper as the views mode,
 * with blocks as regions of the arena. As in aset.c a free chunk holds the
 * link to the next free chunk of its class in its first four bytes, so the
 * freelists are two Int32Arrays and the hot path touches no JS object at
 * all. A reset changes the live tag of the whole arena, so any pointer from
 * before it fails the header check.
 */

import { type Arena, PointerCapableContext } from "./arena.ts";
import {
  checkAllocSize,
  CHUNK_HEADER_SIZE,
  type ContextStats,
  FIRST_LIVE_TAG,
  formatCounters,
  FREE_TAG,
  maxAlign,
  nextLiveTag,
} from "./memnodes.ts";

/** Freelists for 8, 16, ... 8192 bytes. */
export const ALLOCSET_NUM_FREELISTS = 11;

/** The freelist index of a small size: 0 for 1..8 bytes, 1 for 9..16, ... */
export function freelistIndex(size: number): number {
  return size <= 8 ? 0 : 29 - Math.clz32(size - 1);
}

/** A block of a pointer context: a region of its arena. */
interface PtrBlock {
  readonly start: number;
  readonly size: number;
  /** Bytes handed out or cut into free chunks; the active block's grow past this. */
  used: number;
}

/** What a views context has instead of pointer freelists and blocks: shared, never written. */
const NO_FREE_COUNTS = new Int32Array(ALLOCSET_NUM_FREELISTS);
const NO_PTR_BLOCKS = new Map<number, PtrBlock>();
const NO_PTR_KEEPER: PtrBlock = { start: 0, size: 0, used: 0 };

/** The pointer half of an AllocSet context (see the header). */
export abstract class AllocSetPointers extends PointerCapableContext {
  // Either half's sizes and freelist flag (a context is one half or the
  // other), set by AllocSetContext's constructor: one copy, not two, in
  // each of the several contexts of every connection.
  /** The largest request served from a freelist size class. */
  protected allocChunkLimit = 0;
  protected initBlockSize = 0;
  protected maxBlockSize = 0;
  protected nextBlockSize = 0;
  /** False while every freelist is empty: resetting a context that never freed is then free. */
  protected freelistsUsed = false;

  // Set by openPointers; a views context keeps these empty ones.
  #arena: Arena | null = null;
  #ptrBlocks: Map<number, PtrBlock> = NO_PTR_BLOCKS;
  /** Head of each pointer freelist (0: empty), and its length for stats. */
  #freeHeads: Int32Array = NO_FREE_COUNTS;
  #freeCounts: Int32Array = NO_FREE_COUNTS;
  #ptrKeeper: PtrBlock = NO_PTR_KEEPER;
  #ptrActive: PtrBlock = this.#ptrKeeper;
  /** Next free byte of the active block, and its end. */
  #ptrFree = 0;
  #ptrEnd = 0;
  #ptrTag = FIRST_LIVE_TAG;

  /**
   * Makes this a pointer context (AllocSetContext's constructor, when
   * created with `pointers: true`): an arena starting with the keeper.
   */
  protected openPointers(keeperSize: number): void {
    this.#freeHeads = new Int32Array(ALLOCSET_NUM_FREELISTS);
    this.#freeCounts = new Int32Array(ALLOCSET_NUM_FREELISTS);
    this.#ptrBlocks = new Map();
    try {
      this.#arena = this.openArena(keeperSize);
    } catch (e) {
      this.abandon();
      throw e;
    }
    this.#ptrKeeper = { start: 0, size: keeperSize, used: 0 };
    this.#resetPtrState();
  }

  allocPtr(size: number): number {
    const arena = this.#arena;
    if (arena !== null && size <= this.allocChunkLimit && (size | 0) === size && size >= 0) {
      const idx = size <= 8 ? 0 : 29 - Math.clz32(size - 1);
      const ptr = this.#freeHeads[idx]!;
      if (ptr !== 0) {
        const u32 = arena.u32;
        this.#freeHeads[idx] = u32[ptr >>> 2]!;
        this.#freeCounts[idx]!--;
        u32[(ptr >>> 2) - 1] = this.#ptrTag;
        return ptr;
      }
      const capacity = 8 << idx;
      const need = capacity + CHUNK_HEADER_SIZE;
      if (this.#ptrEnd - this.#ptrFree < need) this.#newPtrBlock(need, size);
      const start = this.#ptrFree;
      this.#ptrFree = start + need;
      // Read after #newPtrBlock: growing the arena replaces its views.
      const u32 = arena.u32;
      const h = start >>> 2;
      u32[h] = capacity;
      u32[h + 1] = this.#ptrTag;
      return start + CHUNK_HEADER_SIZE;
    }
    return this.#allocPtrLarge(size);
  }

  freePtr(ptr: number): void {
    const arena = this.#arena;
    if (
      arena === null || (ptr | 0) !== ptr || (ptr & 7) !== 0 || ptr < CHUNK_HEADER_SIZE ||
      ptr >= arena.end
    ) {
      this.badPointer(ptr, "free");
    }
    const u32 = arena.u32;
    const h = (ptr >>> 2) - 2;
    if (u32[h + 1] !== this.#ptrTag) this.badPointer(ptr, "free");
    const capacity = u32[h]!;
    if (capacity > this.allocChunkLimit) {
      const block = this.#ptrBlocks.get(ptr - CHUNK_HEADER_SIZE);
      if (block === undefined) this.badPointer(ptr, "free");
      u32[h + 1] = FREE_TAG;
      this.#ptrBlocks.delete(block.start);
      this.giveRegion(block.start, block.size);
      return;
    }
    u32[h + 1] = FREE_TAG;
    const idx = capacity <= 8 ? 0 : 29 - Math.clz32(capacity - 1);
    this.freelistsUsed = true;
    u32[h + 2] = this.#freeHeads[idx]!;
    this.#freeHeads[idx] = ptr;
    this.#freeCounts[idx]!++;
  }

  reallocPtr(ptr: number, size: number): number {
    const capacity = this.#livePtrCapacity(ptr, "realloc");
    checkAllocSize(size);
    // In place under the same rule as realloc().
    if (size <= capacity && (capacity <= this.allocChunkLimit || size > this.allocChunkLimit)) {
      return ptr;
    }
    const moved = this.allocPtr(size);
    this.#arena!.memory.copyWithin(moved, ptr, ptr + Math.min(capacity, size));
    this.freePtr(ptr);
    return moved;
  }

  ptrCapacity(ptr: number): number {
    return this.#livePtrCapacity(ptr, "get capacity of");
  }

  /** stats() of a pointer context. */
  protected pointerStats(): ContextStats {
    const counters = { nblocks: 0, freechunks: 0, totalspace: 0, freespace: 0 };
    for (const block of this.#ptrBlocks.values()) {
      const used = block === this.#ptrActive ? this.#ptrFree - block.start : block.used;
      counters.nblocks++;
      counters.totalspace += block.size;
      counters.freespace += block.size - used;
    }
    for (let idx = 0; idx < ALLOCSET_NUM_FREELISTS; idx++) {
      const n = this.#freeCounts[idx]!;
      counters.freechunks += n;
      counters.freespace += n * ((8 << idx) + CHUNK_HEADER_SIZE);
    }
    return { counters, line: formatCounters(counters) };
  }

  /** resetSelf() of a pointer context: only the keeper is left, under a new live tag. */
  protected resetPointers(): void {
    let released = 0;
    for (const block of this.#ptrBlocks.values()) {
      if (block !== this.#ptrKeeper) released += block.size;
    }
    this.truncateArena(this.#ptrKeeper.size, released);
    this.#ptrTag = nextLiveTag(this.#ptrTag);
    this.#resetPtrState();
  }

  /** deleteSelf() of a pointer context: the whole arena is given back. */
  protected deletePointers(): void {
    let size = 0;
    for (const block of this.#ptrBlocks.values()) size += block.size;
    this.closeArena(size);
    this.#ptrBlocks.clear();
    this.#clearFreelists();
    // Nothing is live and nothing has room: the next allocPtr is refused.
    this.#ptrFree = this.#ptrEnd = 0;
    this.#ptrTag = nextLiveTag(this.#ptrTag);
  }

  /** isEmptySelf() of a pointer context. */
  protected isEmptyPointers(): boolean {
    return this.#ptrBlocks.size === 1 && this.#ptrActive === this.#ptrKeeper &&
      this.#ptrFree === 0;
  }

  #clearFreelists(): void {
    if (!this.freelistsUsed) return;
    this.freelistsUsed = false;
    this.#freeHeads.fill(0);
    this.#freeCounts.fill(0);
  }

  /** Only the empty keeper left, active again (creation and reset of a pointer context). */
  #resetPtrState(): void {
    const keeper = this.#ptrKeeper;
    keeper.used = 0;
    this.#ptrBlocks.clear();
    this.#ptrBlocks.set(keeper.start, keeper);
    this.#ptrActive = keeper;
    this.#ptrFree = keeper.start;
    this.#ptrEnd = keeper.start + keeper.size;
    this.nextBlockSize = this.initBlockSize;
    this.#clearFreelists();
  }

  /** The capacity of a live pointer chunk, or the error saying why it is not one. */
  #livePtrCapacity(ptr: number, action: string): number {
    const arena = this.#arena;
    if (
      arena === null || (ptr | 0) !== ptr || (ptr & 7) !== 0 || ptr < CHUNK_HEADER_SIZE ||
      ptr >= arena.end || arena.u32[(ptr >>> 2) - 1] !== this.#ptrTag
    ) {
      this.badPointer(ptr, action);
    }
    return arena.u32[(ptr >>> 2) - 2]!;
  }

  /** A pointer request above the chunk limit: a region of its own. */
  #allocPtrLarge(size: number): number {
    if (this.#arena === null) this.pointersNotServed();
    checkAllocSize(size);
    if (size <= this.allocChunkLimit) return this.allocPtr(size);
    const capacity = maxAlign(size);
    const start = this.takeRegion(capacity + CHUNK_HEADER_SIZE, size);
    const u32 = this.#arena.u32;
    u32[start >>> 2] = capacity;
    u32[(start >>> 2) + 1] = this.#ptrTag;
    const regionSize = capacity + CHUNK_HEADER_SIZE;
    this.#ptrBlocks.set(start, { start, size: regionSize, used: regionSize });
    return start + CHUNK_HEADER_SIZE;
  }

  /** aset.ts's #newBlock for a pointer context: the same carving and block sizes, in the arena. */
  #newPtrBlock(need: number, size: number): void {
    const u32 = this.#arena!.u32;
    const maxIdx = freelistIndex(this.allocChunkLimit);
    let avail = this.#ptrEnd - this.#ptrFree;
    while (avail >= 8 + CHUNK_HEADER_SIZE) {
      const idx = Math.min(28 - Math.clz32(avail - CHUNK_HEADER_SIZE), maxIdx);
      const capacity = 8 << idx;
      const start = this.#ptrFree;
      u32[start >>> 2] = capacity;
      u32[(start >>> 2) + 1] = FREE_TAG;
      this.freelistsUsed = true;
      u32[(start >>> 2) + 2] = this.#freeHeads[idx]!;
      this.#freeHeads[idx] = start + CHUNK_HEADER_SIZE;
      this.#freeCounts[idx]!++;
      this.#ptrFree = start + capacity + CHUNK_HEADER_SIZE;
      avail -= capacity + CHUNK_HEADER_SIZE;
    }
    this.#ptrActive.used = this.#ptrFree - this.#ptrActive.start;
    let blockSize = this.nextBlockSize;
    this.nextBlockSize = Math.min(blockSize * 2, this.maxBlockSize);
    while (blockSize < need) blockSize *= 2;
    const start = this.takeRegion(blockSize, size);
    const block = { start, size: blockSize, used: 0 };
    this.#ptrBlocks.set(start, block);
    this.#ptrActive = block;
    this.#ptrFree = start;
    this.#ptrEnd = start + blockSize;
  }
}
