/**
 * Bump, the allocator for short-lived work, the pgts counterpart of
 * PostgreSQL's bump.c.
 *
 * A chunk is the next 8-aligned run of bytes in the newest block: no header,
 * no freelist, no free and no realloc. The only way to give memory back is
 * to reset or delete the context, which makes it the fastest choice for
 * per-message work that is thrown away as a whole. Blocks double from
 * initBlockSize to maxBlockSize; a request above the chunk limit gets a
 * block of its own. The keeper block survives resets.
 *
 * Views into the keeper block are remembered by offset, so the same sequence
 * of requests after a reset (the next message of the same shape) gets the
 * same view objects back instead of new ones.
 *
 * Created with `pointers: true`, the context hands out byte offsets into its
 * arena instead (allocPtr): a pointer allocation is an add and a compare, and
 * a reset gives back every region but the keeper at once. Bump chunks have
 * no header, so a pointer cannot be checked for liveness, only for being
 * inside the context's memory.
 */

import { type Arena, checkParent, PointerCapableContext } from "./arena.ts";
import {
  ALLOCSET_DEFAULT_SIZES,
  type BlockSizes,
  checkAllocSize,
  checkBlockSizes,
  type ContextStats,
  maxAlign,
} from "./memnodes.ts";
import { type McxtState, MemoryBlock, MemoryContext, type MemoryContextOptions } from "./mcxt.ts";

/** At least this many maximum chunks fit in a maximum-size block. */
const BUMP_CHUNK_FRACTION = 8;

/** Options of a Bump context. */
export interface BumpOptions extends MemoryContextOptions {
  /** Block sizes; ALLOCSET_DEFAULT_SIZES when omitted. */
  sizes?: Readonly<BlockSizes>;
  /** Hand out pointers into `memory` (allocPtr) instead of Uint8Array views. */
  pointers?: boolean;
}

/** A memory context without per-chunk free (BumpContextCreate). */
export class BumpContext extends PointerCapableContext {
  readonly type = "Bump" as const;
  readonly #initBlockSize: number;
  readonly #maxBlockSize: number;
  readonly #chunkLimit: number;
  readonly #keeper: MemoryBlock;
  readonly #keeperViews: (Uint8Array | undefined)[];
  readonly #blocks = new Set<MemoryBlock>();
  #nextBlockSize: number;
  #active: MemoryBlock;
  // Pointer contexts only: blocks as [start, size, used] triples, the keeper first.
  readonly #arena: Arena | null = null;
  readonly #ptrBlocks: number[] = [];
  /** Index in #ptrBlocks of the active block, whose `used` is #ptrFree - start. */
  #ptrActive = 0;
  /** Next free byte of the active block, and its end. */
  #ptrFree = 0;
  #ptrEnd = 0;

  constructor(parent: MemoryContext | McxtState, name: string, options: BumpOptions = {}) {
    super(parent, name, options);
    const sizes = options.sizes ?? ALLOCSET_DEFAULT_SIZES;
    try {
      checkBlockSizes(sizes, name);
    } catch (e) {
      this.abandon();
      throw e;
    }
    const { minContextSize, initBlockSize, maxBlockSize } = sizes;
    this.#initBlockSize = initBlockSize;
    this.#maxBlockSize = maxBlockSize;
    this.#nextBlockSize = initBlockSize;
    this.#chunkLimit = Math.max(8, Math.floor(maxBlockSize / BUMP_CHUNK_FRACTION) & ~7);
    const keeperSize = minContextSize !== 0 ? minContextSize : initBlockSize;
    if (options.pointers === true) {
      try {
        this.#arena = this.openArena(keeperSize);
      } catch (e) {
        this.abandon();
        throw e;
      }
      // Stand-ins: Uint8Array methods refuse before touching them.
      this.#keeper = new MemoryBlock(this, new ArrayBuffer(0));
      this.#keeperViews = [];
      this.#active = this.#keeper;
      this.#ptrBlocks.push(0, keeperSize, 0);
      this.#ptrEnd = keeperSize;
      return;
    }
    let buffer: ArrayBuffer;
    try {
      buffer = this.chargeBlock(keeperSize, keeperSize, true);
    } catch (e) {
      this.abandon();
      throw e;
    }
    this.#keeper = new MemoryBlock(this, buffer);
    this.#keeperViews = new Array((keeperSize >>> 3) + 1);
    this.registerBlock(this.#keeper);
    this.#blocks.add(this.#keeper);
    this.#active = this.#keeper;
  }

  alloc(size: number): Uint8Array {
    if (this.#arena !== null) this.viewsNotServed("alloc");
    if (size <= this.#chunkLimit && (size | 0) === size && size >= 0) {
      const need = (size + 7) & ~7;
      let block = this.#active;
      if (block.size - block.freeptr < need) block = this.#newBlock(need, size);
      const start = block.freeptr;
      block.freeptr = start + need;
      if (block === this.#keeper) {
        const views = this.#keeperViews;
        const cached = views[start >>> 3];
        if (cached !== undefined && cached.length === size) return cached;
        return (views[start >>> 3] = new Uint8Array(block.buffer, start, size));
      }
      return new Uint8Array(block.buffer, start, size);
    }
    return this.#allocLarge(size);
  }

  free(chunk: Uint8Array): void {
    if (this.#arena !== null) this.viewsNotServed("free");
    this.#checkOwned(chunk, "free");
    throw new TypeError("pfree is not supported by the bump memory allocator");
  }

  realloc(chunk: Uint8Array, _size: number): Uint8Array {
    if (this.#arena !== null) this.viewsNotServed("realloc");
    this.#checkOwned(chunk, "realloc");
    throw new TypeError("realloc is not supported by the bump memory allocator");
  }

  allocPtr(size: number): number {
    if (this.#arena !== null && size <= this.#chunkLimit && (size | 0) === size && size >= 0) {
      const need = (size + 7) & ~7;
      if (this.#ptrEnd - this.#ptrFree < need) this.#newPtrBlock(need, size);
      const start = this.#ptrFree;
      this.#ptrFree = start + need;
      return start;
    }
    return this.#allocPtrLarge(size);
  }

  freePtr(ptr: number): void {
    this.#checkPtr(ptr, "free");
    throw new TypeError("pfree is not supported by the bump memory allocator");
  }

  reallocPtr(ptr: number, _size: number): number {
    this.#checkPtr(ptr, "realloc");
    throw new TypeError("realloc is not supported by the bump memory allocator");
  }

  ptrCapacity(ptr: number): number {
    this.#checkPtr(ptr, "get capacity of");
    throw new TypeError("GetMemoryChunkSpace is not supported by the bump memory allocator");
  }

  stats(): ContextStats {
    const counters = { nblocks: 0, freechunks: 0, totalspace: 0, freespace: 0 };
    for (const block of this.#blocks) {
      counters.nblocks++;
      counters.totalspace += block.size;
      counters.freespace += block.size - block.freeptr;
    }
    const ptrBlocks = this.#ptrBlocks;
    for (let i = 0; i < ptrBlocks.length; i += 3) {
      const start = ptrBlocks[i]!;
      const size = ptrBlocks[i + 1]!;
      counters.nblocks++;
      counters.totalspace += size;
      counters.freespace += size -
        (i === this.#ptrActive ? this.#ptrFree - start : ptrBlocks[i + 2]!);
    }
    const { totalspace, nblocks, freespace } = counters;
    return {
      counters,
      line: `${totalspace} total in ${nblocks} blocks; ${freespace} free; ${
        totalspace - freespace
      } used`,
    };
  }

  protected resetSelf(): void {
    if (this.#arena !== null) {
      const ptrBlocks = this.#ptrBlocks;
      let released = 0;
      for (let i = 3; i < ptrBlocks.length; i += 3) released += ptrBlocks[i + 1]!;
      const keeperSize = ptrBlocks[1]!;
      // The usual reset of a per-message context: only the keeper was used.
      if (ptrBlocks.length > 3) this.truncateArena(keeperSize, released);
      ptrBlocks.length = 3;
      ptrBlocks[2] = 0;
      this.#ptrActive = 0;
      this.#ptrFree = 0;
      this.#ptrEnd = keeperSize;
      this.#nextBlockSize = this.#initBlockSize;
      return;
    }
    for (const block of this.#blocks) {
      if (block !== this.#keeper) this.releaseBlock(block);
    }
    this.#blocks.clear();
    this.#blocks.add(this.#keeper);
    this.#keeper.markEmpty();
    this.#active = this.#keeper;
    this.#nextBlockSize = this.#initBlockSize;
  }

  protected deleteSelf(): void {
    if (this.#arena !== null) {
      let size = 0;
      for (let i = 0; i < this.#ptrBlocks.length; i += 3) size += this.#ptrBlocks[i + 1]!;
      this.closeArena(size);
      this.#ptrBlocks.length = 0;
      this.#ptrActive = -1;
      this.#ptrFree = this.#ptrEnd = 0;
      return;
    }
    for (const block of this.#blocks) this.releaseBlock(block);
    this.#blocks.clear();
    this.#keeperViews.length = 0;
    this.#active = new MemoryBlock(this, new ArrayBuffer(0));
  }

  protected isEmptySelf(): boolean {
    if (this.#arena !== null) return this.#ptrBlocks.length === 3 && this.#ptrFree === 0;
    for (const block of this.#blocks) if (block.freeptr !== 0) return false;
    return true;
  }

  /** Bump chunks carry no header, so only the owner can be checked. */
  #checkOwned(chunk: Uint8Array, action: string): void {
    const block = chunk instanceof Uint8Array ? this.registry.get(chunk.buffer) : undefined;
    if (block === undefined || block.owner !== this) this.badChunk(chunk, action);
  }

  /** Bump chunks carry no header: a pointer can only be checked to lie in the memory. */
  #checkPtr(ptr: number, action: string): void {
    const arena = this.#arena;
    if (arena === null || (ptr | 0) !== ptr || ptr < 0 || ptr >= arena.end) {
      this.badPointer(ptr, action);
    }
  }

  #allocPtrLarge(size: number): number {
    if (this.#arena === null) this.pointersNotServed();
    checkAllocSize(size);
    if (size <= this.#chunkLimit) return this.allocPtr(size);
    const capacity = maxAlign(size);
    const start = this.takeRegion(capacity, size);
    this.#ptrBlocks.push(start, capacity, capacity);
    return start;
  }

  /** #newBlock for a pointer context: the same block sizes, in the arena. */
  #newPtrBlock(need: number, size: number): void {
    const ptrBlocks = this.#ptrBlocks;
    const active = this.#ptrActive;
    if (active >= 0) ptrBlocks[active + 2] = this.#ptrFree - ptrBlocks[active]!;
    let blockSize = this.#nextBlockSize;
    this.#nextBlockSize = Math.min(blockSize * 2, this.#maxBlockSize);
    while (blockSize < need) blockSize *= 2;
    const start = this.takeRegion(blockSize, size);
    ptrBlocks.push(start, blockSize, 0);
    this.#ptrActive = ptrBlocks.length - 3;
    this.#ptrFree = start;
    this.#ptrEnd = start + blockSize;
  }

  #allocLarge(size: number): Uint8Array {
    checkAllocSize(size);
    if (size <= this.#chunkLimit) return this.alloc(size);
    const buffer = this.chargeBlock(maxAlign(size), size);
    const block = new MemoryBlock(this, buffer);
    block.freeptr = buffer.byteLength;
    this.registerBlock(block);
    this.#blocks.add(block);
    return new Uint8Array(buffer, 0, size);
  }

  #newBlock(need: number, size: number): MemoryBlock {
    let blockSize = this.#nextBlockSize;
    this.#nextBlockSize = Math.min(blockSize * 2, this.#maxBlockSize);
    while (blockSize < need) blockSize *= 2;
    const block = new MemoryBlock(this, this.chargeBlock(blockSize, size));
    this.registerBlock(block);
    this.#blocks.add(block);
    this.#active = block;
    return block;
  }
}

/** Creates a Bump context under `parent` (BumpContextCreate). */
export function bumpContextCreate(
  parent: MemoryContext,
  name: string,
  options: BumpOptions = {},
): BumpContext {
  checkParent(parent, name);
  return new BumpContext(parent, name, options);
}
