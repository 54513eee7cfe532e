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
 */

import {
  ALLOCSET_DEFAULT_SIZES,
  type BlockSizes,
  checkAllocSize,
  type ContextStats,
  maxAlign,
  MemoryBlock,
} from "./memnodes.ts";
import { type McxtState, MemoryContext, type MemoryContextOptions } from "./mcxt.ts";

/** At least this many maximum chunks fit in a maximum-size block. */
const BUMP_CHUNK_FRACTION = 8;

/** Options of a Bump context. */
export interface BumpOptions extends MemoryContextOptions {
  /** Block sizes; ALLOCSET_DEFAULT_SIZES when omitted. */
  sizes?: Readonly<BlockSizes>;
}

/** A memory context without per-chunk free (BumpContextCreate). */
export class BumpContext extends MemoryContext {
  readonly type = "Bump" as const;
  readonly #initBlockSize: number;
  readonly #maxBlockSize: number;
  readonly #chunkLimit: number;
  readonly #keeper: MemoryBlock;
  readonly #keeperViews: (Uint8Array | undefined)[];
  readonly #blocks = new Set<MemoryBlock>();
  #nextBlockSize: number;
  #active: MemoryBlock;

  constructor(parent: MemoryContext | McxtState, name: string, options: BumpOptions = {}) {
    super(parent, name, options);
    const sizes = options.sizes ?? ALLOCSET_DEFAULT_SIZES;
    const { minContextSize, initBlockSize, maxBlockSize } = sizes;
    if (
      !Number.isSafeInteger(initBlockSize) || (initBlockSize & 7) !== 0 || initBlockSize < 1024 ||
      !Number.isSafeInteger(maxBlockSize) || (maxBlockSize & 7) !== 0 ||
      maxBlockSize < initBlockSize || maxBlockSize > 0x40000000 ||
      !Number.isSafeInteger(minContextSize) || (minContextSize & 7) !== 0 ||
      (minContextSize !== 0 && minContextSize < 1024)
    ) {
      this.abandon();
      throw new RangeError(
        `Invalid block sizes for memory context "${name}": min ${minContextSize}, init ${initBlockSize}, max ${maxBlockSize}`,
      );
    }
    this.#initBlockSize = initBlockSize;
    this.#maxBlockSize = maxBlockSize;
    this.#nextBlockSize = initBlockSize;
    this.#chunkLimit = Math.max(8, Math.floor(maxBlockSize / BUMP_CHUNK_FRACTION) & ~7);
    const keeperSize = minContextSize !== 0 ? minContextSize : initBlockSize;
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
    this.#checkOwned(chunk, "free");
    throw new TypeError("pfree is not supported by the bump memory allocator");
  }

  realloc(chunk: Uint8Array, _size: number): Uint8Array {
    this.#checkOwned(chunk, "realloc");
    throw new TypeError("realloc is not supported by the bump memory allocator");
  }

  stats(): ContextStats {
    const counters = { nblocks: 0, freechunks: 0, totalspace: 0, freespace: 0 };
    for (const block of this.#blocks) {
      counters.nblocks++;
      counters.totalspace += block.size;
      counters.freespace += block.size - block.freeptr;
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
    for (const block of this.#blocks) this.releaseBlock(block);
    this.#blocks.clear();
    this.#keeperViews.length = 0;
    this.#active = new MemoryBlock(this, new ArrayBuffer(0));
  }

  protected isEmptySelf(): boolean {
    for (const block of this.#blocks) if (block.freeptr !== 0) return false;
    return true;
  }

  /** Bump chunks carry no header, so only the owner can be checked. */
  #checkOwned(chunk: Uint8Array, action: string): void {
    const block = chunk instanceof Uint8Array ? this.registry.get(chunk.buffer) : undefined;
    if (block === undefined || block.owner !== this) this.badChunk(chunk, action);
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
  if (!(parent instanceof MemoryContext)) {
    throw new TypeError(`Cannot create memory context "${name}": parent must be a MemoryContext`);
  }
  return new BumpContext(parent, name, options);
}
