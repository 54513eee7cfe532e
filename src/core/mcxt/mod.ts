/**
 * Memory contexts: PostgreSQL's mcxt, aset, bump and slab allocators over
 * ArrayBuffer blocks, with the standard per-backend context tree and the
 * statistics of MemoryContextStats and pg_backend_memory_contexts.
 *
 * A context hands out Uint8Array views (`alloc`), or, created with
 * `pointers: true`, byte offsets into its `memory` (`allocPtr`, `freePtr`,
 * `reallocPtr`): the hot-path form, which creates no object per chunk.
 *
 * @module
 */

export { AllocSetContext, allocSetContextCreate } from "./aset.ts";
export type { AllocSetOptions } from "./aset.ts";
export { BumpContext, bumpContextCreate } from "./bump.ts";
export type { BumpOptions } from "./bump.ts";
export {
  SLAB_DEFAULT_BLOCK_SIZE,
  SLAB_LARGE_BLOCK_SIZE,
  SlabContext,
  slabContextCreate,
} from "./slab.ts";
export type { SlabOptions } from "./slab.ts";
export { MemoryContext } from "./mcxt.ts";
export type { MemoryContextOptions } from "./mcxt.ts";
export type { ResetCallback } from "./resetcallbacks.ts";
export {
  ALLOCSET_DEFAULT_SIZES,
  ALLOCSET_SMALL_SIZES,
  ALLOCSET_START_SMALL_SIZES,
  MAX_ALLOC_SIZE,
} from "./memnodes.ts";
export type {
  BlockSizes,
  ContextStats,
  MemoryContextCounters,
  MemoryContextType,
} from "./memnodes.ts";
export { backendMemoryContexts, memoryContextInit, MemoryContextTree } from "./init.ts";
export type { MemoryContextInitOptions } from "./init.ts";
export {
  getBackendMemoryContexts,
  logMemoryContextStats,
  memoryContextMemConsumed,
  memoryContextStats,
  memoryContextStatsLog,
} from "./stats.ts";
export type { BackendMemoryContext, MemoryContextStatsOptions } from "./stats.ts";
