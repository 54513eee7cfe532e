/**
 * Keeper buffers of deleted contexts, zeroed, for the next AllocSet context
 * made with a keeper of the same size: aset.c's context freelists, for its
 * two common keeper sizes (8 KB, the default and ErrorContext's; 1 KB, the
 * small sizes). Every backend builds and deletes a standard tree, so without
 * them each connection would cost six fresh ArrayBuffers, which the engine
 * zero-fills and the garbage collector later takes back. A keeperless
 * context's blocks of those sizes come and go through them too (aset.ts).
 *
 * Shared by every tree of the realm: the one module-level state of the
 * allocators. At most KEEPER_FREELIST_MAX buffers each, as aset.c keeps
 * MAX_FREE_CONTEXTS. A buffer here belongs to no context and is charged to
 * none until one takes it.
 */

import type { MemoryBlock } from "./mcxt.ts";

const keeperFreelists = new Map<number, ArrayBuffer[]>([[1024, []], [8192, []]]);
const KEEPER_FREELIST_MAX = 100;

/** A kept buffer of `size` bytes, all zero, or undefined when none is kept. */
export function takeKeeperBuffer(size: number): ArrayBuffer | undefined {
  return keeperFreelists.get(size)?.pop();
}

/**
 * Keeps the buffer of a released block for the next context that needs one
 * of its size, when that size is kept and its freelist has room.
 */
export function keepBuffer(block: MemoryBlock): void {
  const freelist = keeperFreelists.get(block.size);
  if (freelist !== undefined && freelist.length < KEEPER_FREELIST_MAX) {
    // The next owner must not see this context's bytes (a reset leaves
    // them), nor take an old chunk header for one of its own.
    block.u32.fill(0);
    freelist.push(block.buffer);
  }
}
