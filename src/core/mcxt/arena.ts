/**
 * The memory of a pointer context: one ArrayBuffer that holds all of the
 * context's blocks side by side, so a chunk is just a byte offset into it,
 * the way a palloc'd chunk is an address. Callers read and write chunks
 * through `memory` (a Uint8Array) and `dataView` indexed by that offset; no
 * object is made per allocation.
 *
 * The arena owns only the bytes and the layout of regions in them: regions
 * are taken from holes left by released regions (first fit) or appended at
 * the end, growing the buffer by doubling. Growing moves the bytes to a new
 * buffer with `ArrayBuffer.prototype.transfer`, which detaches the old one:
 * offsets stay valid but `memory` and `dataView` are new objects after any
 * allocation, and a view kept from before reads as empty. A resizable
 * ArrayBuffer would keep the views, but typed-array access through one is
 * two to three times slower in JavaScriptCore (see scripts/bench/mcxt.ts).
 *
 * Offsets stay below 2^31 so they are small integers on every engine.
 *
 * `PointerCapableContext` is the base of the allocators (on blocks.ts's
 * `BlockContext`, which gives them ArrayBuffer blocks): it owns the arena
 * of a pointer context and is the one place that takes regions from it and
 * gives them back, charging each to the context like an ArrayBuffer block.
 * A context without an arena refuses the pointer methods, and vice versa.
 * `checkParent` is the check every allocator's ContextCreate function makes.
 */

import { BlockContext } from "./blocks.ts";
import { type McxtState, MemoryContext, type MemoryContextOptions } from "./mcxt.ts";

/** The largest arena: every offset stays a small integer. */
export const MAX_ARENA_SIZE = 0x7ffffff8;

/** One growable memory of byte offsets. */
export class Arena {
  buffer: ArrayBuffer;
  memory: Uint8Array;
  u32: Uint32Array;
  dataView: DataView;
  /** End of the last region in use; the buffer may be longer. */
  end = 0;
  /** Released regions below `end` as start, size pairs, sorted by start. */
  readonly #holes: number[] = [];
  /** The buffer never shrinks below this (the keeper's size). */
  readonly #minCapacity: number;

  constructor(capacity: number) {
    this.#minCapacity = capacity;
    this.buffer = new ArrayBuffer(capacity);
    this.memory = new Uint8Array(this.buffer);
    this.u32 = new Uint32Array(this.buffer);
    this.dataView = new DataView(this.buffer);
  }

  /** Start of a free region of `size` bytes (8-aligned), or -1 if the buffer cannot grow. */
  take(size: number): number {
    const holes = this.#holes;
    for (let i = 0; i < holes.length; i += 2) {
      const start = holes[i]!;
      const hole = holes[i + 1]!;
      if (hole < size) continue;
      if (hole === size) holes.splice(i, 2);
      else {
        holes[i] = start + size;
        holes[i + 1] = hole - size;
      }
      return start;
    }
    const start = this.end;
    if (start + size > this.buffer.byteLength && !this.#resize(start + size)) return -1;
    this.end = start + size;
    return start;
  }

  /** Gives a region back; a region at the end shortens the arena instead of leaving a hole. */
  give(start: number, size: number): void {
    const holes = this.#holes;
    let i = 0;
    while (i < holes.length && holes[i]! < start) i += 2;
    holes.splice(i, 0, start, size);
    // Merge with the following hole, then with the preceding one.
    if (i + 2 < holes.length && start + size === holes[i + 2]) {
      holes[i + 1] = holes[i + 1]! + holes[i + 3]!;
      holes.splice(i + 2, 2);
    }
    if (i >= 2 && holes[i - 2]! + holes[i - 1]! === start) {
      holes[i - 1] = holes[i - 1]! + holes[i + 1]!;
      holes.splice(i, 2);
      i -= 2;
    }
    if (holes[i]! + holes[i + 1]! === this.end) {
      this.end = holes[i]!;
      holes.splice(i, 2);
      // Keep room to grow again, so a large chunk freed and allocated in a
      // loop does not move the whole arena each time.
      if (this.end <= this.buffer.byteLength >>> 2) this.#shrinkTo(this.end * 2);
    }
  }

  /** Forgets every region from `end` on (a reset keeping the keeper). */
  truncate(end: number): void {
    const holes = this.#holes;
    while (holes.length > 0 && holes[holes.length - 2]! >= end) holes.length -= 2;
    this.end = end;
    this.#shrinkTo(end);
  }

  /** Gives the whole buffer back; views handed out before read as empty. */
  release(): void {
    this.#holes.length = 0;
    this.end = 0;
    this.#replace(this.buffer.transfer(0));
  }

  /** Gives the buffer beyond `capacity` back, never going below the keeper. */
  #shrinkTo(capacity: number): void {
    const target = Math.max(this.#minCapacity, (capacity + 7) & ~7);
    if (this.buffer.byteLength > target) this.#replace(this.buffer.transfer(target));
  }

  #resize(need: number): boolean {
    if (need > MAX_ARENA_SIZE) return false;
    const doubled = Math.min(MAX_ARENA_SIZE, this.buffer.byteLength * 2);
    try {
      this.#replace(this.buffer.transfer(Math.max(need, doubled)));
    } catch {
      return false;
    }
    return true;
  }

  #replace(buffer: ArrayBuffer): void {
    this.buffer = buffer;
    this.memory = new Uint8Array(buffer);
    this.u32 = new Uint32Array(buffer, 0, buffer.byteLength >>> 2);
    this.dataView = new DataView(buffer);
  }
}

/**
 * The check of every allocator's ContextCreate function: a context is made
 * under another context, never under a tree's internal state.
 */
export function checkParent(parent: MemoryContext, name: string): void {
  if (!(parent instanceof MemoryContext)) {
    throw new TypeError(`Cannot create memory context "${name}": parent must be a MemoryContext`);
  }
}

/** A memory context that may hand out pointers into an arena. */
export abstract class PointerCapableContext extends BlockContext {
  #arena: Arena | null = null;

  protected constructor(
    parent: MemoryContext | McxtState,
    name: string,
    options: MemoryContextOptions = {},
  ) {
    super(parent, name, options);
  }

  get isPointerContext(): boolean {
    return this.#arena !== null;
  }

  get memory(): Uint8Array {
    return (this.#arena ?? this.pointersNotServed()).memory;
  }

  get dataView(): DataView {
    return (this.#arena ?? this.pointersNotServed()).dataView;
  }

  allocZeroPtr(size: number): number {
    const ptr = this.allocPtr(size);
    this.#arena!.memory.fill(0, ptr, ptr + size);
    return ptr;
  }

  /**
   * Makes this a pointer context whose memory starts with a keeper region
   * of `size` bytes at offset 0, charged like a keeper block.
   */
  protected openArena(size: number): Arena {
    this.chargeSpace(size, size, true);
    let arena: Arena;
    try {
      arena = new Arena(size);
    } catch {
      this.chargeSpace(-size, size);
      this.outOfMemory(size, true);
    }
    arena.end = size;
    this.#arena = arena;
    return arena;
  }

  /** Takes a region of `size` bytes for a block, charged like a block; returns its offset. */
  protected takeRegion(size: number, requestSize: number): number {
    this.chargeSpace(size, requestSize);
    const start = this.#arena!.take(size);
    if (start < 0) {
      this.chargeSpace(-size, requestSize);
      this.outOfMemory(requestSize);
    }
    return start;
  }

  /** Gives a block's region back. */
  protected giveRegion(start: number, size: number): void {
    this.#arena!.give(start, size);
    this.chargeSpace(-size, size);
  }

  /** Releases every region from `end` on, `size` bytes of blocks in all (reset). */
  protected truncateArena(end: number, size: number): void {
    this.#arena!.truncate(end);
    this.chargeSpace(-size, size);
  }

  /** Releases the whole memory, `size` bytes of blocks in all (delete). */
  protected closeArena(size: number): void {
    this.#arena!.release();
    this.chargeSpace(-size, size);
  }

  /** Throws the precise error for a pointer that a pointer method cannot accept. */
  protected badPointer(ptr: unknown, action: string): never {
    if (this.#arena === null) this.pointersNotServed();
    if (typeof ptr !== "number" || !Number.isSafeInteger(ptr) || ptr < 0) {
      throw new TypeError(`Cannot ${action} pointer: expected a byte offset, got ${String(ptr)}`);
    }
    if (this.isDeleted) {
      throw new TypeError(
        `Cannot ${action} pointer ${ptr} in memory context "${this.name}": it has been deleted`,
      );
    }
    throw new TypeError(
      `Cannot ${action} pointer ${ptr} in memory context "${this.name}": it is not a live chunk (freed already, freed by a reset, or not the start of a chunk)`,
    );
  }

  /** Throws the error for a Uint8Array method called on a pointer context. */
  protected viewsNotServed(action: string): never {
    throw new TypeError(
      `Cannot ${action} a Uint8Array chunk in memory context "${this.name}": it hands out pointers (use ${action}Ptr)`,
    );
  }

  /** Throws the error for a pointer method called on a context of Uint8Array chunks. */
  protected pointersNotServed(): never {
    throw new TypeError(
      `Memory context "${this.name}" hands out Uint8Array chunks, not pointers (create it with pointers: true)`,
    );
  }
}
