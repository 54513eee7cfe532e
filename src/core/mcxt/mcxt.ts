/**
 * The memory-context tree, the pgts counterpart of PostgreSQL's mcxt.c.
 *
 * `MemoryContext` is the part every allocator shares: its place in the tree
 * (parent, children newest first), reset, delete and their reset callbacks,
 * the resources it owns, byte accounting and the optional byte limit of a
 * subtree. The allocators (aset.ts, bump.ts, slab.ts) supply alloc, free,
 * realloc and the type-specific reset, delete and stats, and get their
 * blocks charged to that accounting through blocks.ts.
 *
 * Every context belongs to one `McxtState`: the registry that maps each live
 * block's ArrayBuffer to its `MemoryBlock` (so a chunk leads back to its
 * owner), and the current context. One state per tree, never a module-level
 * singleton, so many backends can live in one JS realm. The reset callbacks
 * of a subtree run through resetcallbacks.ts, which collects their failures.
 *
 * A context created with `pointers: true` hands out chunks as byte offsets
 * into its own `memory` instead of Uint8Array views (allocPtr, freePtr,
 * reallocPtr; see arena.ts). Its blocks are regions of that memory, charged
 * and limited exactly like ArrayBuffer blocks. A context serves one kind.
 *
 * Deleting TopMemoryContext or the current context (or an ancestor of it) is
 * refused before anything is touched. Running out of memory, whether against
 * a limit or because an ArrayBuffer cannot be had, is reported as SQLSTATE
 * 53200 exactly as PostgreSQL words it.
 */

import { ERRCODE, PgError } from "../elog.ts";
import {
  type ContextStats,
  FIRST_LIVE_TAG,
  type MemoryContextType,
  nextLiveTag,
} from "./memnodes.ts";
import {
  type CallbackSink,
  disposerOf,
  finishSync,
  newSink,
  type ResetCallback,
  runResetCallbacks,
  throwCollected,
} from "./resetcallbacks.ts";

/** Options every context accepts at creation. */
export interface MemoryContextOptions {
  /** Shown after the name in stats, like PostgreSQL's MemoryContextSetIdentifier. */
  ident?: string;
  /** Byte limit for the blocks of this context and all its descendants. */
  limit?: number;
}

/**
 * The per-tree state shared by all contexts of one tree. Internal: reached
 * through a `MemoryContextTree`, never exported from the package.
 */
export class McxtState {
  /** Live blocks by their ArrayBuffer: how pfree finds a chunk's owner. */
  readonly blocks: Map<ArrayBufferLike, MemoryBlock> = new Map();
  /** Buffers of released blocks, to tell a stale chunk from a foreign one. */
  readonly released: WeakMap<ArrayBufferLike, string> = new WeakMap();
  current: MemoryContext | null = null;
  top: MemoryContext | null = null;
  /** Called before an out-of-memory error is thrown (PostgreSQL dumps stats). */
  onOutOfMemory: ((context: MemoryContext, size: number) => void) | undefined;
}

/**
 * One ArrayBuffer owned by a context. Chunk headers are two uint32 words
 * just before the chunk: its capacity in bytes, then `liveTag` or FREE_TAG.
 */
export class MemoryBlock {
  readonly buffer: ArrayBuffer;
  readonly u32: Uint32Array;
  readonly size: number;
  readonly owner: MemoryContext;
  /** Offset of the first byte not yet handed out. */
  freeptr = 0;
  /** Header word that marks a live chunk; changes when the block is reset. */
  liveTag = FIRST_LIVE_TAG;
  /**
   * The view last handed out at each chunk offset (offset / 16), kept by
   * AllocSet for small blocks so free() can recognise its own views without
   * reading `chunk.buffer`, which is slow on some engines. Null if not kept.
   */
  byOffset: (Uint8Array | undefined)[] | null = null;

  constructor(owner: MemoryContext, buffer: ArrayBuffer) {
    this.owner = owner;
    this.buffer = buffer;
    this.size = buffer.byteLength;
    // A stand-in of no bytes (a keeperless or deleted context's): one empty view serves all.
    this.u32 = buffer.byteLength === 0 ? NO_WORDS : new Uint32Array(buffer, 0, this.size >>> 2);
  }

  /** Forgets every chunk: headers written before this no longer count as live. */
  markEmpty(): void {
    this.freeptr = 0;
    this.liveTag = nextLiveTag(this.liveTag);
  }
}

const NO_WORDS = new Uint32Array(0);
/** A context's reset callbacks before it has any: one empty list for all (most never get one). */
const NO_CALLBACKS: ResetCallback[] = [];

/**
 * A memory context: a node of the tree that owns blocks of real bytes and
 * hands out chunks of them as Uint8Array views.
 */
export abstract class MemoryContext implements Disposable, AsyncDisposable {
  abstract readonly type: MemoryContextType;
  readonly name: string;
  #ident: string | undefined;
  #state: McxtState;
  #parent: MemoryContext | null = null;
  #firstChild: MemoryContext | null = null;
  #nextChild: MemoryContext | null = null;
  #prevChild: MemoryContext | null = null;
  /** NO_CALLBACKS (shared, never written) until the first registration. */
  #callbacks: ResetCallback[] = NO_CALLBACKS;
  #memAllocated = 0;
  #subtreeAllocated = 0;
  #limit: number | undefined;
  #deleted = false;

  protected constructor(
    parent: MemoryContext | McxtState,
    name: string,
    options: MemoryContextOptions = {},
  ) {
    if (typeof name !== "string" || name.length === 0) {
      throw new TypeError("Cannot create memory context: name must be a non-empty string");
    }
    this.name = name;
    this.#ident = options.ident;
    if (options.limit !== undefined) this.setLimit(options.limit);
    if (parent instanceof MemoryContext) {
      if (parent.#deleted) {
        throw new TypeError(
          `Cannot create memory context "${name}": parent "${parent.name}" has been deleted`,
        );
      }
      this.#state = parent.#state;
      this.#link(parent);
    } else {
      this.#state = parent;
    }
  }

  /** The identifier shown after the name in stats, if any. */
  get ident(): string | undefined {
    return this.#ident;
  }

  /** Sets the identifier (MemoryContextSetIdentifier); undefined clears it. */
  setIdentifier(ident: string | undefined): void {
    this.#ident = ident;
  }

  get parent(): MemoryContext | null {
    return this.#parent;
  }

  /** The newest child; siblings follow through `nextChild`. */
  get firstChild(): MemoryContext | null {
    return this.#firstChild;
  }

  get nextChild(): MemoryContext | null {
    return this.#nextChild;
  }

  /** The children, newest first (PostgreSQL links new children at the head). */
  children(): MemoryContext[] {
    const out: MemoryContext[] = [];
    for (let c = this.#firstChild; c !== null; c = c.#nextChild) out.push(c);
    return out;
  }

  get isDeleted(): boolean {
    return this.#deleted;
  }

  /** True while this context is the current one of its tree. */
  get isCurrent(): boolean {
    return this.#state.current === this;
  }

  /** The byte limit of this subtree, if one is set. */
  get limit(): number | undefined {
    return this.#limit;
  }

  /**
   * Limits the bytes of blocks held by this context and its descendants.
   * Checked whenever a block is obtained; memory already held is kept.
   */
  setLimit(bytes: number | undefined): void {
    if (bytes !== undefined && (!Number.isSafeInteger(bytes) || bytes < 0)) {
      throw new RangeError(`Invalid memory context limit ${bytes}`);
    }
    this.#limit = bytes;
  }

  /** Allocates `size` bytes; the contents are not zeroed. */
  abstract alloc(size: number): Uint8Array;
  /** Frees a chunk of this context; throws if it is not a live chunk of it. */
  abstract free(chunk: Uint8Array): void;
  /** Resizes a chunk of this context, keeping its contents up to the smaller size. */
  abstract realloc(chunk: Uint8Array, size: number): Uint8Array;
  /** Counters and stats line of this context alone. */
  abstract stats(): ContextStats;
  /** Releases all chunks (keeping a keeper block where the allocator has one). */
  protected abstract resetSelf(): void;
  /** Releases every block; the context will not be used again. */
  protected abstract deleteSelf(): void;
  /** True if nothing has been allocated since creation or the last reset. */
  protected abstract isEmptySelf(): boolean;

  /**
   * Allocates `size` bytes in a pointer context and returns their offset in
   * `memory`; the contents are not zeroed. Read `memory` again afterwards:
   * an allocation may have moved it to a larger buffer.
   */
  abstract allocPtr(size: number): number;
  /** Frees a pointer chunk of this context; throws if it is not a live chunk of it. */
  abstract freePtr(ptr: number): void;
  /** Resizes a pointer chunk, keeping its contents up to the smaller size; returns its offset. */
  abstract reallocPtr(ptr: number, size: number): number;
  /** Usable bytes of a live pointer chunk, read from its header (GetMemoryChunkSpace less the header). */
  abstract ptrCapacity(ptr: number): number;
  /** Allocates `size` zeroed bytes in a pointer context (palloc0). */
  abstract allocZeroPtr(size: number): number;
  /** True if this context hands out pointers (created with `pointers: true`). */
  abstract readonly isPointerContext: boolean;
  /**
   * The bytes of a pointer context, indexed by the offsets allocPtr returns.
   * A new object after any allocation that grew it: read it, do not keep it.
   */
  abstract readonly memory: Uint8Array;
  /** A DataView of `memory`, with the same lifetime. */
  abstract readonly dataView: DataView;

  /** Allocates `size` zeroed bytes (palloc0). */
  allocZero(size: number): Uint8Array {
    const chunk = this.alloc(size);
    chunk.fill(0);
    return chunk;
  }

  /** True if the context has no children and nothing allocated. */
  isEmpty(): boolean {
    return this.#firstChild === null && this.isEmptySelf();
  }

  /** Bytes in the blocks of this context, and of its descendants if `recurse`. */
  memAllocated(recurse = false): number {
    return recurse ? this.#subtreeAllocated : this.#memAllocated;
  }

  /**
   * Registers a callback run on the next reset or delete of this context.
   * Callbacks run newest first, children's before parents', each at most once.
   */
  registerResetCallback(callback: ResetCallback): void {
    if (typeof callback !== "function") {
      throw new TypeError("Cannot register reset callback: callback must be a function");
    }
    this.#checkLive("register a reset callback in");
    if (this.#callbacks === NO_CALLBACKS) this.#callbacks = [];
    this.#callbacks.push(callback);
  }

  /**
   * Makes this context own a resource: on the next reset or delete its
   * `Symbol.dispose` (or `Symbol.asyncDispose`) method is called.
   */
  own<T extends Disposable | AsyncDisposable>(resource: T): T {
    this.registerResetCallback(disposerOf(resource));
    return resource;
  }

  /** Deletes the children, then releases this context's own memory (MemoryContextReset). */
  reset(): void {
    this.#checkLive("reset");
    if (this.#firstChild === null && this.#callbacks.length === 0) {
      // The per-message case: nothing to run, nothing to collect.
      this.resetSelf();
      return;
    }
    if (this.#firstChild !== null) this.#checkCurrentOutside("reset", false);
    const sink = newSink(this.name);
    this.#deleteChildren(sink);
    this.#resetOnly(sink);
    finishSync(sink);
  }

  /** Releases this context's own memory, leaving the children alone. */
  resetOnly(): void {
    this.#checkLive("reset");
    const sink = newSink(this.name);
    this.#resetOnly(sink);
    finishSync(sink);
  }

  /** Resets every descendant (resetOnly each), leaving this context and the tree shape alone. */
  resetChildren(): void {
    this.#checkLive("reset children of");
    const sink = newSink(this.name);
    this.#resetChildren(sink);
    finishSync(sink);
  }

  /** Deletes this context and its subtree, releasing all their memory. */
  delete(): void {
    this.#checkDeletable();
    const sink = newSink(this.name);
    this.#delete(sink);
    finishSync(sink);
  }

  /** Deletes all descendants, leaving this context itself alone. */
  deleteChildren(): void {
    this.#checkLive("delete children of");
    this.#checkCurrentOutside("delete children of", false);
    const sink = newSink(this.name);
    this.#deleteChildren(sink);
    finishSync(sink);
  }

  /**
   * Moves this context (with its subtree) under another parent, or detaches
   * it with null. Moving memory in does not check the new parent's limit.
   */
  setParent(newParent: MemoryContext | null): void {
    this.#checkLive("move");
    if (newParent === this.#parent) return;
    if (this === this.#state.top) throw new TypeError("Cannot move TopMemoryContext");
    if (newParent !== null) {
      if (newParent.#state !== this.#state) {
        throw new TypeError(
          `Cannot move memory context "${this.name}": the new parent belongs to another tree`,
        );
      }
      if (newParent.#deleted) {
        throw new TypeError(
          `Cannot move memory context "${this.name}": parent "${newParent.name}" has been deleted`,
        );
      }
      for (let c: MemoryContext | null = newParent; c !== null; c = c.#parent) {
        if (c === this) {
          throw new TypeError(
            `Cannot move memory context "${this.name}" under its own descendant "${newParent.name}"`,
          );
        }
      }
    }
    this.#unlink();
    if (newParent !== null) this.#link(newParent);
  }

  /** Deletes the context when a `using` scope ends. */
  [Symbol.dispose](): void {
    this.delete();
  }

  /** Deletes the context and waits for the async disposal of what it owned. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#checkDeletable();
    const sink = newSink(this.name);
    this.#delete(sink);
    const settled = await Promise.allSettled(sink.promises);
    for (const s of settled) if (s.status === "rejected") sink.errors.push(s.reason);
    throwCollected(sink.errors);
  }

  /** The live-block registry of this context's tree. */
  protected get registry(): Map<ArrayBufferLike, MemoryBlock> {
    return this.#state.blocks;
  }

  /** Buffers of the tree's released blocks, with the context that released each. */
  protected get released(): WeakMap<ArrayBufferLike, string> {
    return this.#state.released;
  }

  /**
   * Charges `size` bytes of a block that is not an ArrayBuffer of its own (a
   * region of a pointer context's memory), with the checks blocks.ts's
   * chargeBlock makes (checkCharge); a negative size gives bytes back.
   */
  protected chargeSpace(size: number, requestSize: number, creating = false): void {
    if (size > 0) this.checkCharge(size, requestSize, creating);
    this.charge(size);
  }

  /**
   * Refuses `size` more bytes for a request of `requestSize`: in a deleted
   * context, or beyond the limit of this context or an ancestor (out of
   * memory).
   */
  protected checkCharge(size: number, requestSize: number, creating = false): void {
    if (this.#deleted) {
      throw new TypeError(`Cannot allocate in memory context "${this.name}": it has been deleted`);
    }
    if (this.#exceedsLimit(size)) this.#outOfMemory(requestSize, creating);
  }

  /** Adds `delta` bytes (negative: gives them back) to this context and its ancestors. */
  protected charge(delta: number): void {
    this.#memAllocated += delta;
    this.#addToSubtrees(delta);
  }

  /** Raises out-of-memory for a request of `requestSize` bytes. */
  protected outOfMemory(requestSize: number, creating = false): never {
    this.#outOfMemory(requestSize, creating);
  }

  /** True if `size` more bytes would break the limit of this context or an ancestor. */
  #exceedsLimit(size: number): boolean {
    if (this.#limit !== undefined && this.#subtreeAllocated + size > this.#limit) return true;
    for (let c = this.#parent; c !== null; c = c.#parent) {
      if (c.#limit !== undefined && c.#subtreeAllocated + size > c.#limit) return true;
    }
    return false;
  }

  /** Adds `delta` bytes to the subtree totals of this context and its ancestors. */
  #addToSubtrees(delta: number): void {
    this.#subtreeAllocated += delta;
    for (let c = this.#parent; c !== null; c = c.#parent) c.#subtreeAllocated += delta;
  }

  /**
   * Takes a context whose first block could not be had back out of the tree,
   * so a failed creation leaves nothing behind.
   */
  protected abandon(): void {
    this.#unlink();
    this.#deleted = true;
  }

  #outOfMemory(size: number, creating: boolean): never {
    const hook = this.#state.onOutOfMemory;
    if (hook !== undefined) {
      try {
        hook(this, size);
      } catch {
        // The report must not hide the error it is about.
      }
    }
    throw new PgError(ERRCODE.OUT_OF_MEMORY, "out of memory", {
      detail: creating
        ? `Failed while creating memory context "${this.name}".`
        : `Failed on request of size ${size} in memory context "${this.name}".`,
    });
  }

  #checkLive(action: string): void {
    if (this.#deleted) {
      throw new TypeError(`Cannot ${action} memory context "${this.name}": it has been deleted`);
    }
  }

  #checkDeletable(): void {
    this.#checkLive("delete");
    if (this === this.#state.top) throw new TypeError("Cannot delete TopMemoryContext");
    this.#checkCurrentOutside("delete", true);
  }

  /** Refuses to touch a subtree holding the current context (strict: this one included). */
  #checkCurrentOutside(action: string, strict: boolean): void {
    const current = this.#state.current;
    if (current === this) {
      if (strict) {
        throw new TypeError(
          `Cannot ${action} memory context "${this.name}": it is the current context`,
        );
      }
      return;
    }
    if (current === null) return;
    for (let c = current.#parent; c !== null; c = c.#parent) {
      if (c === this) {
        throw new TypeError(
          `Cannot ${action} memory context "${this.name}": the current context "${current.name}" is inside it`,
        );
      }
    }
  }

  #resetOnly(sink: CallbackSink): void {
    runResetCallbacks(this.#callbacks, sink);
    this.resetSelf();
  }

  #resetChildren(sink: CallbackSink): void {
    for (let c = this.#firstChild; c !== null; c = c.#nextChild) {
      c.#resetChildren(sink);
      c.#resetOnly(sink);
    }
  }

  #deleteChildren(sink: CallbackSink): void {
    while (this.#firstChild !== null) this.#firstChild.#delete(sink);
  }

  #delete(sink: CallbackSink): void {
    this.#deleteChildren(sink);
    runResetCallbacks(this.#callbacks, sink);
    // Unlinked before the blocks go, so a failure leaves no half-deleted
    // context in the tree: better a leak than a crash.
    this.#unlink();
    this.#deleted = true;
    this.deleteSelf();
  }

  #link(parent: MemoryContext): void {
    this.#parent = parent;
    this.#prevChild = null;
    this.#nextChild = parent.#firstChild;
    if (parent.#firstChild !== null) parent.#firstChild.#prevChild = this;
    parent.#firstChild = this;
    for (let c: MemoryContext | null = parent; c !== null; c = c.#parent) {
      c.#subtreeAllocated += this.#subtreeAllocated;
    }
  }

  #unlink(): void {
    const parent = this.#parent;
    if (parent === null) return;
    for (let c: MemoryContext | null = parent; c !== null; c = c.#parent) {
      c.#subtreeAllocated -= this.#subtreeAllocated;
    }
    if (this.#prevChild !== null) this.#prevChild.#nextChild = this.#nextChild;
    else parent.#firstChild = this.#nextChild;
    if (this.#nextChild !== null) this.#nextChild.#prevChild = this.#prevChild;
    this.#parent = null;
    this.#prevChild = null;
    this.#nextChild = null;
  }
}
