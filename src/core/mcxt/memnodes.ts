/**
 * Shared vocabulary of the memory-context allocators, the pgts counterpart of
 * PostgreSQL's memnodes.h and memutils.h: the context types, the counters a
 * context reports to the stats code, the size presets, and the layout of a
 * chunk (its header, the live and free tags). `MemoryBlock`, the ArrayBuffer
 * an allocator carves into chunks, names its owning context, so it lives
 * with `MemoryContext` in mcxt.ts; this module imports none of the others.
 * It holds no state of its own and never allocates on behalf of a context.
 */

/** The allocator kinds, as `pg_backend_memory_contexts.type` names them. */
export type MemoryContextType = "AllocSet" | "Bump" | "Slab";

/** What one context (or a set of them) holds, as PostgreSQL counts it. */
export interface MemoryContextCounters {
  /** Blocks obtained for the context. */
  nblocks: number;
  /** Chunks sitting on freelists. */
  freechunks: number;
  /** Bytes in all blocks. */
  totalspace: number;
  /** Bytes not handed out: unused block tails plus free chunks. */
  freespace: number;
}

/** One context's counters and its stats line without the name. */
export interface ContextStats {
  counters: MemoryContextCounters;
  /** e.g. `8192 total in 1 blocks; 7928 free (0 chunks); 264 used` */
  line: string;
}

/** Block-size parameters of an AllocSet or Bump context, in bytes. */
export interface BlockSizes {
  /** Size of the keeper block when not zero; otherwise initBlockSize is used. */
  minContextSize: number;
  initBlockSize: number;
  maxBlockSize: number;
}

/** ALLOCSET_DEFAULT_SIZES: 0 / 8 KB / 8 MB. */
export const ALLOCSET_DEFAULT_SIZES: Readonly<BlockSizes> = Object.freeze({
  minContextSize: 0,
  initBlockSize: 8 * 1024,
  maxBlockSize: 8 * 1024 * 1024,
});

/** ALLOCSET_SMALL_SIZES: 0 / 1 KB / 8 KB, for contexts expected to stay small. */
export const ALLOCSET_SMALL_SIZES: Readonly<BlockSizes> = Object.freeze({
  minContextSize: 0,
  initBlockSize: 1024,
  maxBlockSize: 8 * 1024,
});

/** ALLOCSET_START_SMALL_SIZES: 0 / 1 KB / 8 MB, small at first but may grow. */
export const ALLOCSET_START_SMALL_SIZES: Readonly<BlockSizes> = Object.freeze({
  minContextSize: 0,
  initBlockSize: 1024,
  maxBlockSize: 8 * 1024 * 1024,
});

/** MaxAllocSize: the largest single request, 1 GB - 1. */
export const MAX_ALLOC_SIZE = 0x3fffffff;

/** Bytes of chunk header before each AllocSet or Slab chunk. */
export const CHUNK_HEADER_SIZE = 8;

/**
 * Second header word of a free chunk. A live chunk instead carries its
 * block's `liveTag`, whose top byte differs, so a stale or forged view fails
 * the check in free().
 */
export const FREE_TAG = 0x46524545;

const LIVE_BASE = 0x4c000000;
const EPOCH_MASK = 0x00ffffff;

/** The header word of live chunks in a block or arena that was never reset. */
export const FIRST_LIVE_TAG = LIVE_BASE | 1;

/** The live tag after `tag`: chunks marked with `tag` no longer count as live. */
export function nextLiveTag(tag: number): number {
  return LIVE_BASE | (((tag & EPOCH_MASK) + 1) & EPOCH_MASK);
}

/** Rounds a size up to the 8-byte alignment of chunks (MAXALIGN). */
export function maxAlign(size: number): number {
  return (size + 7) & ~7;
}

/** Throws the TypeError for a size no allocator accepts. */
export function checkAllocSize(size: number): void {
  if (!Number.isInteger(size) || size < 0 || size > MAX_ALLOC_SIZE) {
    throw new RangeError(`Invalid memory alloc request size ${size}`);
  }
}

/**
 * Throws the RangeError for block sizes an AllocSet or Bump context cannot
 * use: each 8-aligned, init and any min at least 1 KB, max between init
 * and 1 GB.
 */
export function checkBlockSizes(sizes: Readonly<BlockSizes>, name: string): void {
  const { minContextSize, initBlockSize, maxBlockSize } = sizes;
  const aligned = (n: number) => Number.isSafeInteger(n) && n >= 0 && (n & 7) === 0;
  if (
    !aligned(minContextSize) || !aligned(initBlockSize) || !aligned(maxBlockSize) ||
    initBlockSize < 1024 || maxBlockSize < initBlockSize || maxBlockSize > 0x40000000 ||
    (minContextSize !== 0 && minContextSize < 1024)
  ) {
    throw new RangeError(
      `Invalid block sizes for memory context "${name}": min ${minContextSize}, init ${initBlockSize}, max ${maxBlockSize}`,
    );
  }
}

/** Formats the AllocSet-style stats line. */
export function formatCounters(c: MemoryContextCounters): string {
  return `${c.totalspace} total in ${c.nblocks} blocks; ${c.freespace} free (${c.freechunks} chunks); ${
    c.totalspace - c.freespace
  } used`;
}
