/**
 * Slab, the allocator for many objects of one size, the pgts counterpart of
 * PostgreSQL's slab.c.
 *
 * Every block of blockSize bytes is cut into equal slots of chunkSize plus an
 * 8-byte header; a request of any other size is an error. Allocation prefers
 * the fullest block that still has room, so sparse blocks drain and can be
 * given back. A block that becomes entirely free is kept for reuse (at most
 * ten of them) and released beyond that. Reset releases every block: a slab
 * has no keeper.
 *
 * A slot's view is made once and handed out again each time the slot is
 * reused, so a warm slab allocates no objects at all. A slab hands out
 * Uint8Array chunks only; the pointer methods refuse.
 */

import {
  checkAllocSize,
  CHUNK_HEADER_SIZE,
  type ContextStats,
  FREE_TAG,
  maxAlign,
} from "./memnodes.ts";
import { checkParent, PointerCapableContext } from "./arena.ts";
import { type McxtState, MemoryBlock, MemoryContext, type MemoryContextOptions } from "./mcxt.ts";

/** SLAB_DEFAULT_BLOCK_SIZE: 8 KB. */
export const SLAB_DEFAULT_BLOCK_SIZE = 8 * 1024;
/** SLAB_LARGE_BLOCK_SIZE: 8 MB. */
export const SLAB_LARGE_BLOCK_SIZE = 8 * 1024 * 1024;
/** Entirely free blocks kept for reuse before they are released. */
const SLAB_MAXIMUM_EMPTY_BLOCKS = 10;

/** Options of a Slab context. */
export interface SlabOptions extends MemoryContextOptions {
  /** The one size every request must have. */
  chunkSize: number;
  /** Bytes per block; SLAB_DEFAULT_BLOCK_SIZE when omitted. */
  blockSize?: number;
}

class SlabBlock extends MemoryBlock {
  /** Slots not handed out, used or never used. */
  nfree: number;
  /** Slots from here on have never been handed out. */
  nunused = 0;
  /** Stack of freed slot numbers. */
  readonly freeSlots: Int32Array;
  freeTop = 0;
  /** The view of each slot, made on first use. */
  readonly views: (Uint8Array | undefined)[];

  constructor(owner: MemoryContext, buffer: ArrayBuffer, chunksPerBlock: number) {
    super(owner, buffer);
    this.nfree = chunksPerBlock;
    this.freeSlots = new Int32Array(chunksPerBlock);
    this.views = new Array(chunksPerBlock);
  }

  clear(chunksPerBlock: number): void {
    this.markEmpty();
    this.nfree = chunksPerBlock;
    this.nunused = 0;
    this.freeTop = 0;
  }
}

/** A memory context of fixed-size chunks (SlabContextCreate). */
export class SlabContext extends PointerCapableContext {
  readonly type = "Slab" as const;
  readonly chunkSize: number;
  readonly blockSize: number;
  readonly #capacity: number;
  readonly #fullChunkSize: number;
  readonly #chunksPerBlock: number;
  readonly #inUse = new Set<SlabBlock>();
  readonly #partial = new Set<SlabBlock>();
  readonly #empty: SlabBlock[] = [];
  #current: SlabBlock | null = null;

  constructor(parent: MemoryContext | McxtState, name: string, options: SlabOptions) {
    super(parent, name, options);
    const { chunkSize, blockSize = SLAB_DEFAULT_BLOCK_SIZE } = options;
    this.chunkSize = chunkSize;
    this.blockSize = blockSize;
    this.#capacity = maxAlign(Math.max(chunkSize, 8));
    this.#fullChunkSize = this.#capacity + CHUNK_HEADER_SIZE;
    this.#chunksPerBlock = Math.floor(blockSize / this.#fullChunkSize);
    try {
      checkAllocSize(chunkSize);
      if (!Number.isSafeInteger(blockSize) || (blockSize & 7) !== 0 || blockSize > 0x40000000) {
        throw new RangeError(`Invalid slab block size ${blockSize}`);
      }
      if (this.#chunksPerBlock === 0) {
        throw new RangeError(
          `Block size ${blockSize} for slab is too small for ${chunkSize}-byte chunks`,
        );
      }
    } catch (e) {
      this.abandon();
      throw e;
    }
  }

  alloc(size: number): Uint8Array {
    if (size !== this.chunkSize) {
      throw new RangeError(`Unexpected alloc chunk size ${size} (expected ${this.chunkSize})`);
    }
    let block = this.#current;
    if (block === null || block.nfree === 0) block = this.#nextBlock(size);
    const slot = block.freeTop !== 0 ? block.freeSlots[--block.freeTop]! : block.nunused++;
    block.nfree--;
    const start = slot * this.#fullChunkSize;
    const u32 = block.u32;
    u32[start >>> 2] = this.#capacity;
    u32[(start >>> 2) + 1] = block.liveTag;
    const view = block.views[slot];
    if (view !== undefined) return view;
    return (block.views[slot] = new Uint8Array(block.buffer, start + CHUNK_HEADER_SIZE, size));
  }

  free(chunk: Uint8Array): void {
    const block = this.#liveBlock(chunk, "free");
    const start = chunk.byteOffset - CHUNK_HEADER_SIZE;
    block.u32[(start >>> 2) + 1] = FREE_TAG;
    block.freeSlots[block.freeTop++] = start / this.#fullChunkSize;
    block.nfree++;
    if (block === this.#current) return;
    if (block.nfree === 1) this.#partial.add(block);
    if (block.nfree === this.#chunksPerBlock) {
      this.#partial.delete(block);
      this.#inUse.delete(block);
      if (this.#empty.length < SLAB_MAXIMUM_EMPTY_BLOCKS) {
        block.clear(this.#chunksPerBlock);
        this.#empty.push(block);
      } else {
        this.releaseBlock(block);
      }
    }
  }

  realloc(chunk: Uint8Array, size: number): Uint8Array {
    this.#liveBlock(chunk, "realloc");
    if (size === this.chunkSize) return chunk;
    throw new TypeError("slab allocator does not support realloc()");
  }

  allocPtr(_size: number): number {
    this.#noPointers();
  }

  freePtr(_ptr: number): void {
    this.#noPointers();
  }

  reallocPtr(_ptr: number, _size: number): number {
    this.#noPointers();
  }

  ptrCapacity(_ptr: number): number {
    this.#noPointers();
  }

  stats(): ContextStats {
    const counters = { nblocks: 0, freechunks: 0, totalspace: 0, freespace: 0 };
    for (const block of this.#inUse) {
      counters.nblocks++;
      counters.freechunks += block.nfree;
      counters.freespace += block.nfree * this.#fullChunkSize;
    }
    // As in PostgreSQL, kept empty blocks count in the total but not as blocks.
    const empty = this.#empty.length;
    counters.totalspace = (counters.nblocks + empty) * this.blockSize;
    const { totalspace, nblocks, freespace, freechunks } = counters;
    return {
      counters,
      line:
        `${totalspace} total in ${nblocks} blocks; ${empty} empty blocks; ${freespace} free (${freechunks} chunks); ${
          totalspace - freespace
        } used`,
    };
  }

  protected resetSelf(): void {
    for (const block of this.#inUse) this.releaseBlock(block);
    for (const block of this.#empty) this.releaseBlock(block);
    this.#inUse.clear();
    this.#partial.clear();
    this.#empty.length = 0;
    this.#current = null;
  }

  protected deleteSelf(): void {
    this.resetSelf();
  }

  protected isEmptySelf(): boolean {
    for (const block of this.#inUse) if (block.nfree !== this.#chunksPerBlock) return false;
    return true;
  }

  #noPointers(): never {
    throw new TypeError(
      `Cannot use pointers in memory context "${this.name}": the slab allocator hands out Uint8Array chunks only`,
    );
  }

  /** The block of a live chunk of this context, or the error saying why not. */
  #liveBlock(chunk: Uint8Array, action: string): SlabBlock {
    const block = chunk instanceof Uint8Array ? this.registry.get(chunk.buffer) : undefined;
    if (block === undefined || block.owner !== this) this.badChunk(chunk, action);
    const start = chunk.byteOffset - CHUNK_HEADER_SIZE;
    if (
      start < 0 || start % this.#fullChunkSize !== 0 ||
      block.u32[(start >>> 2) + 1] !== block.liveTag
    ) {
      this.badChunk(chunk, action);
    }
    return block as SlabBlock;
  }

  /** Moves to the fullest block with room, a kept empty one, or a new one. */
  #nextBlock(size: number): SlabBlock {
    let best: SlabBlock | null = null;
    for (const block of this.#partial) {
      if (best === null || block.nfree < best.nfree) best = block;
    }
    if (best !== null) {
      this.#partial.delete(best);
    } else {
      best = this.#empty.pop() ?? null;
      if (best === null) {
        const buffer = this.chargeBlock(this.blockSize, size);
        best = new SlabBlock(this, buffer, this.#chunksPerBlock);
        this.registerBlock(best);
      }
      this.#inUse.add(best);
    }
    // The block left behind is full; its first free() puts it among the partial ones.
    this.#current = best;
    return best;
  }
}

/** Creates a Slab context under `parent` (SlabContextCreate). */
export function slabContextCreate(
  parent: MemoryContext,
  name: string,
  options: SlabOptions,
): SlabContext {
  checkParent(parent, name);
  return new SlabContext(parent, name, options);
}
