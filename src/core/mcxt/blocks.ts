/**
 * The ArrayBuffer blocks of a memory context, the way an allocator gets and
 * gives back its memory (aset.c's, bump.c's and slab.c's malloc and free of
 * blocks, with mcxt.c's accounting). `BlockContext` is the base of every
 * allocator, below arena.ts's `PointerCapableContext`: it obtains a block's
 * bytes charged to the context and its ancestors (chargeBlock), keeps the
 * block in its tree's registry so that a chunk leads back to its owner,
 * releases it, and says precisely why a chunk handed back to free or
 * realloc is not a live chunk of the context (badChunk).
 *
 * The accounting and the limits themselves are MemoryContext's (mcxt.ts);
 * nothing here walks the tree.
 */

import {
  type McxtState,
  type MemoryBlock,
  MemoryContext,
  type MemoryContextOptions,
} from "./mcxt.ts";

/** A memory context whose chunks live in ArrayBuffer blocks of its own. */
export abstract class BlockContext extends MemoryContext {
  protected constructor(
    parent: MemoryContext | McxtState,
    name: string,
    options: MemoryContextOptions = {},
  ) {
    super(parent, name, options);
  }

  /**
   * Obtains `size` bytes for a new block, charging them to this context and
   * its ancestors. Raises out-of-memory (reporting `requestSize`, the size the
   * caller asked for) when a limit would be exceeded or no buffer can be had.
   * `reuse`, a zeroed buffer of `size` bytes that no context owns, is taken
   * instead of a new one.
   */
  protected chargeBlock(
    size: number,
    requestSize: number,
    creating = false,
    reuse?: ArrayBuffer,
  ): ArrayBuffer {
    this.checkCharge(size, requestSize, creating);
    let buffer: ArrayBuffer;
    try {
      buffer = reuse ?? new ArrayBuffer(size);
    } catch {
      this.outOfMemory(requestSize, creating);
    }
    this.charge(size);
    return buffer;
  }

  /** Registers a block obtained through chargeBlock. */
  protected registerBlock(block: MemoryBlock): void {
    this.registry.set(block.buffer, block);
  }

  /** Unregisters a block and gives its bytes back to this context and its ancestors. */
  protected releaseBlock(block: MemoryBlock): void {
    // No chunk header can match any more, whatever still points at the block.
    block.liveTag = -1;
    this.registry.delete(block.buffer);
    this.released.set(block.buffer, this.name);
    this.charge(-block.size);
  }

  /** Throws the precise error for a chunk that free/realloc cannot accept. */
  protected badChunk(chunk: unknown, action: string): never {
    if (!(chunk instanceof Uint8Array)) {
      throw new TypeError(`Cannot ${action} chunk: expected a Uint8Array`);
    }
    const block = this.registry.get(chunk.buffer);
    if (block === undefined) {
      const releasedBy = this.released.get(chunk.buffer);
      if (releasedBy !== undefined) {
        throw new TypeError(
          `Cannot ${action} chunk: its block was released by a reset or delete of memory context "${releasedBy}"`,
        );
      }
      throw new TypeError(
        `Cannot ${action} chunk: it was not allocated by a memory context of this tree`,
      );
    }
    if (block.owner !== this) {
      throw new TypeError(
        `Cannot ${action} chunk in memory context "${this.name}": it belongs to memory context "${block.owner.name}"`,
      );
    }
    throw new TypeError(
      `Cannot ${action} chunk in memory context "${this.name}": it is not a live chunk (freed already, freed by a reset, or not the start of a chunk)`,
    );
  }
}
