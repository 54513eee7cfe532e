/**
 * The standard context tree of one backend, the pgts counterpart of
 * MemoryContextInit and the global contexts of PostgreSQL's mcxt.c.
 *
 * `memoryContextInit()` returns a `MemoryContextTree`: TopMemoryContext, the
 * contexts PostgreSQL hangs under it, the current context, and palloc/pfree
 * on top of them. The tree is an object, not module state, because the
 * in-process adapter runs many children in one realm and each needs its own.
 *
 * Lifetimes, as in PostgreSQL's memory-context README:
 * - TopMemoryContext: never reset or deleted.
 * - ErrorContext: an AllocSet of 8 KB min/init/max, so its keeper block is
 *   always there: an error report can be built after running out of memory.
 * - PostmasterContext: the postmaster's working memory; a child deletes it
 *   once it is set up (`deletePostmasterContext`).
 * - CacheMemoryContext: catalog caches; never reset.
 * - MessageContext: the current client message; reset at every command
 *   (`startCommand`).
 * - TopTransactionContext: lives until the end of the top-level transaction
 *   (`endTransaction`).
 *
 * A backend takes its tree with `backendMemoryContexts()` and ends it with
 * `recycle()`: an ended backend's tree, emptied back to the shape a new one
 * has, is what the next backend of the realm starts with (PostgreSQL keeps
 * freelists of deleted contexts for the same reason: building the standard
 * tree is a cost paid on every connection).
 */

import { AllocSetContext } from "./aset.ts";
import { ALLOCSET_DEFAULT_SIZES, ALLOCSET_START_SMALL_SIZES } from "./memnodes.ts";
import { McxtState, MemoryContext } from "./mcxt.ts";
import {
  type BackendMemoryContext,
  getBackendMemoryContexts,
  memoryContextStats,
} from "./stats.ts";
import type { MemoryContextStatsOptions } from "./stats.ts";

/** Options of memoryContextInit. */
export interface MemoryContextInitOptions {
  /** Byte limit on the blocks of the whole tree. */
  limit?: number;
  /**
   * Receives MemoryContextStats(TopMemoryContext) just before an
   * out-of-memory error is thrown, where PostgreSQL writes it to stderr.
   */
  onOutOfMemory?: (stats: string) => void;
  /**
   * A tree for a backend that may sit idle for long (thousands of pooled
   * clients): every context is made without a keeper block (see aset.ts)
   * and holds nothing while the backend is idle. MessageContext, reset for
   * every command, starts at 1 KB (ALLOCSET_START_SMALL_SIZES: most
   * messages are small; blocks still grow to 8 MB), and its block goes back
   * to the keeper freelists (keepers.ts) at each reset: about 0.6 µs more a
   * command than keeping it, 1.1 KB less for each idle connection (10,000
   * idle clients in 256 MiB). The ErrorContext reserve goes too: a pgts
   * backend builds its error reports outside the tree.
   */
  lean?: boolean;
}

const ERROR_CONTEXT_SIZES = Object.freeze({
  minContextSize: 8 * 1024,
  initBlockSize: 8 * 1024,
  maxBlockSize: 8 * 1024,
});

/** The memory contexts of one backend and its current context. */
export class MemoryContextTree implements Disposable {
  readonly topMemoryContext: AllocSetContext;
  readonly errorContext: AllocSetContext;
  readonly cacheMemoryContext: AllocSetContext;
  readonly messageContext: AllocSetContext;
  readonly topTransactionContext: AllocSetContext;
  #postmasterContext: AllocSetContext | null;
  readonly #state: McxtState;
  /** Made without a limit or an out-of-memory report: a tree any backend can take over. */
  readonly #plain: boolean;
  /** A lean tree (see MemoryContextInitOptions.lean). */
  readonly #lean: boolean;

  constructor(options: MemoryContextInitOptions = {}) {
    const state = new McxtState();
    this.#state = state;
    this.#plain = options.limit === undefined && options.onOutOfMemory === undefined;
    this.#lean = options.lean === true;
    const topOptions = options.limit === undefined ? {} : { limit: options.limit };
    const keeper = this.#lean ? { keeper: false } : {};
    const top = new AllocSetContext(state, "TopMemoryContext", { ...topOptions, ...keeper });
    state.top = top;
    state.current = top;
    this.topMemoryContext = top;
    this.errorContext = new AllocSetContext(top, "ErrorContext", {
      sizes: ERROR_CONTEXT_SIZES,
      ...keeper,
    });
    const sizes = ALLOCSET_DEFAULT_SIZES;
    this.#postmasterContext = new AllocSetContext(top, "PostmasterContext", { sizes, ...keeper });
    this.cacheMemoryContext = new AllocSetContext(top, "CacheMemoryContext", { sizes, ...keeper });
    this.messageContext = new AllocSetContext(top, "MessageContext", {
      sizes: this.#lean ? ALLOCSET_START_SMALL_SIZES : sizes,
      ...keeper,
    });
    this.topTransactionContext = new AllocSetContext(top, "TopTransactionContext", {
      sizes,
      ...keeper,
    });
    const report = options.onOutOfMemory;
    if (report !== undefined) state.onOutOfMemory = () => report(memoryContextStats(top));
  }

  /** The postmaster's context, or null once a child has deleted it. */
  get postmasterContext(): AllocSetContext | null {
    return this.#postmasterContext;
  }

  /** CurrentMemoryContext: where palloc allocates. */
  get current(): MemoryContext {
    return this.#state.current!;
  }

  /** Makes `context` current and returns the previous one (MemoryContextSwitchTo). */
  switchTo(context: MemoryContext): MemoryContext {
    if (!(context instanceof MemoryContext)) {
      throw new TypeError("Cannot switch to memory context: expected a MemoryContext");
    }
    if (context.isDeleted) {
      throw new TypeError(`Cannot switch to memory context "${context.name}": it has been deleted`);
    }
    if (!this.#owns(context)) {
      throw new TypeError(
        `Cannot switch to memory context "${context.name}": it does not belong to this tree`,
      );
    }
    const previous = this.#state.current!;
    this.#state.current = context;
    return previous;
  }

  /** Allocates in the current context. */
  palloc(size: number): Uint8Array {
    return this.#state.current!.alloc(size);
  }

  /** Allocates zeroed bytes in the current context. */
  palloc0(size: number): Uint8Array {
    return this.#state.current!.allocZero(size);
  }

  /** Frees a chunk of any context of this tree, found from the chunk itself. */
  pfree(chunk: Uint8Array): void {
    const block = this.#state.blocks.get(chunk.buffer);
    // An unknown buffer goes to TopMemoryContext, whose free explains the error.
    (block?.owner ?? this.topMemoryContext).free(chunk);
  }

  /** Resizes a chunk of any context of this tree, in the context that owns it. */
  repalloc(chunk: Uint8Array, size: number): Uint8Array {
    const block = this.#state.blocks.get(chunk.buffer);
    return (block?.owner ?? this.topMemoryContext).realloc(chunk, size);
  }

  /** The context that owns a chunk (GetMemoryChunkContext). */
  getMemoryChunkContext(chunk: Uint8Array): MemoryContext {
    const block = this.#state.blocks.get(chunk.buffer);
    if (block === undefined) {
      throw new TypeError(
        "Cannot find memory context of chunk: it is not a live chunk of this tree",
      );
    }
    return block.owner;
  }

  /**
   * Deletes PostmasterContext, as a child does once it no longer needs the
   * postmaster's working memory. Makes TopMemoryContext current if the
   * current context was inside it.
   */
  deletePostmasterContext(): void {
    const pm = this.#postmasterContext;
    if (pm === null) return;
    if (this.#isInside(this.#state.current!, pm)) this.#state.current = this.topMemoryContext;
    this.#postmasterContext = null;
    pm.delete();
  }

  /**
   * Starts a command cycle: makes MessageContext current and resets it, so
   * nothing of the previous message survives. Returns MessageContext.
   */
  startCommand(): AllocSetContext {
    this.#state.current = this.messageContext;
    this.messageContext.reset();
    return this.messageContext;
  }

  /**
   * Ends the top-level transaction: makes TopMemoryContext current and
   * resets TopTransactionContext (AtCommit_Memory / AtAbort_Memory).
   */
  endTransaction(): void {
    this.#state.current = this.topMemoryContext;
    this.topTransactionContext.reset();
  }

  /** MemoryContextStats(TopMemoryContext) as text. */
  stats(options: MemoryContextStatsOptions = {}): string {
    return memoryContextStats(this.topMemoryContext, options);
  }

  /** The rows of pg_backend_memory_contexts for this tree. */
  backendMemoryContexts(): BackendMemoryContext[] {
    return getBackendMemoryContexts(this.topMemoryContext);
  }

  /**
   * Ends the tree, as a backend's exit would: deletes everything under
   * TopMemoryContext and resets it, running every reset callback.
   */
  [Symbol.dispose](): void {
    this.#state.current = this.topMemoryContext;
    this.#postmasterContext = null;
    this.topMemoryContext.reset();
  }

  /**
   * Ends the tree as [Symbol.dispose] does, running every reset callback,
   * and keeps it for the next `backendMemoryContexts()` if it is then back
   * in the shape that call returns: the four standard contexts under
   * TopMemoryContext, each with only its keeper block (in a lean tree, no
   * block at all), no limit and no
   * identifier. Anything else the backend made (children, PostmasterContext,
   * detached contexts' blocks, limits) either goes with the reset or keeps
   * the tree from being reused.
   */
  recycle(): void {
    if (pooled.has(this)) return; // recycled already: listing it twice would give it to two backends
    const top = this.topMemoryContext;
    const standard: MemoryContext[] = [
      this.errorContext,
      this.cacheMemoryContext,
      this.messageContext,
      this.topTransactionContext,
    ];
    this.#state.current = top;
    this.#postmasterContext = null;
    for (const child of top.children()) if (!standard.includes(child)) child.delete();
    let reusable = this.#plain && treeFreelist.length < TREE_FREELIST_MAX;
    for (const context of standard) {
      if (context.isDeleted || context.parent !== top) {
        reusable = false;
        continue;
      }
      context.reset();
      context.setIdentifier(undefined);
      if (context.limit !== undefined) reusable = false;
    }
    top.resetOnly();
    top.setIdentifier(undefined);
    const kept = this.#lean ? 0 : standard.length + 1;
    if (!reusable || top.limit !== undefined || this.#state.blocks.size !== kept) {
      this[Symbol.dispose]();
      return;
    }
    pooled.add(this);
    treeFreelist.push(this);
  }

  #owns(context: MemoryContext): boolean {
    let c: MemoryContext = context;
    while (c.parent !== null) c = c.parent;
    if (c === this.topMemoryContext) return true;
    // A detached context still belongs to its tree; ask the registry.
    for (const block of this.#state.blocks.values()) if (block.owner === context) return true;
    return false;
  }

  #isInside(context: MemoryContext, ancestor: MemoryContext): boolean {
    for (let c: MemoryContext | null = context; c !== null; c = c.parent) {
      if (c === ancestor) return true;
    }
    return false;
  }
}

/** Trees ended backends gave back (`recycle`), for the next ones; at most TREE_FREELIST_MAX. */
const treeFreelist: MemoryContextTree[] = [];
const pooled = new WeakSet<MemoryContextTree>();
const TREE_FREELIST_MAX = 16;

/**
 * The tree a backend starts with: MemoryContextInit's, with PostmasterContext
 * already deleted (a backend has no use for it), taken from the trees ended
 * backends recycled when there is one. End it with `recycle()`.
 */
export function backendMemoryContexts(): MemoryContextTree {
  const recycled = treeFreelist.pop();
  if (recycled !== undefined) {
    pooled.delete(recycled);
    return recycled;
  }
  const tree = new MemoryContextTree({ lean: true });
  tree.deletePostmasterContext();
  return tree;
}

/** Creates the standard context tree of one backend (MemoryContextInit). */
export function memoryContextInit(options: MemoryContextInitOptions = {}): MemoryContextTree {
  return new MemoryContextTree(options);
}
