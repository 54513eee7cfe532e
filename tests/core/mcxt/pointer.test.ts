import { describe, expect, test } from "bun:test";
import { PgError } from "../../../src/core/elog.ts";
import {
  allocSetContextCreate,
  bumpContextCreate,
  type MemoryContext,
  memoryContextInit,
  slabContextCreate,
} from "../../../src/core/mcxt/mod.ts";

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error");
}

const SIZES = { minContextSize: 0, initBlockSize: 1024, maxBlockSize: 8 * 1024 };

describe("AllocSet pointers", () => {
  test("a pointer is an 8-aligned offset into memory, readable after the memory grows", () => {
    const mcxt = memoryContextInit();
    const cx = allocSetContextCreate(mcxt.topMemoryContext, "ptrs", {
      pointers: true,
      sizes: SIZES,
    });
    expect(cx.isPointerContext).toBe(true);
    const first = cx.allocPtr(100);
    expect(first % 8).toBe(0);
    expect(cx.ptrCapacity(first)).toBe(128);
    cx.memory.set([1, 2, 3], first);
    cx.dataView.setUint32(first + 4, 0xdeadbeef);
    const before = cx.memory;
    const ptrs: number[] = [];
    for (let i = 0; i < 200; i++) {
      const p = cx.allocPtr(40);
      cx.memory[p] = i;
      ptrs.push(p);
    }
    expect(cx.memory).not.toBe(before); // grown: a new view of a larger buffer
    expect(before.length).toBe(0); // the old buffer was detached, not left stale
    expect([...cx.memory.subarray(first, first + 3)]).toEqual([1, 2, 3]);
    expect(cx.dataView.getUint32(first + 4)).toBe(0xdeadbeef);
    ptrs.forEach((p, i) => expect(cx.memory[p]).toBe(i & 0xff));
    expect(new Set(ptrs).size).toBe(200);
  });

  test("a freed chunk is handed out again for the same size class", () => {
    const mcxt = memoryContextInit();
    const cx = allocSetContextCreate(mcxt.topMemoryContext, "ptrs", { pointers: true });
    const a = cx.allocPtr(60);
    const b = cx.allocPtr(60);
    cx.freePtr(a);
    expect(cx.stats().counters.freechunks).toBe(1);
    expect(cx.allocPtr(33)).toBe(a);
    expect(cx.allocPtr(60)).not.toBe(b);
    expect(cx.stats().counters.freechunks).toBe(0);
  });

  test("reallocPtr stays in place within the capacity and moves with the contents beyond it", () => {
    const mcxt = memoryContextInit();
    const cx = allocSetContextCreate(mcxt.topMemoryContext, "ptrs", { pointers: true });
    const p = cx.allocPtr(20);
    cx.memory.set([9, 8, 7, 6], p);
    expect(cx.reallocPtr(p, 32)).toBe(p);
    const q = cx.reallocPtr(p, 500);
    expect(q).not.toBe(p);
    expect(cx.ptrCapacity(q)).toBe(512);
    expect([...cx.memory.subarray(q, q + 4)]).toEqual([9, 8, 7, 6]);
    expect(() => cx.freePtr(p)).toThrow(/not a live chunk/);
    const big = cx.reallocPtr(q, 100_000);
    expect([...cx.memory.subarray(big, big + 4)]).toEqual([9, 8, 7, 6]);
    const small = cx.reallocPtr(big, 10);
    expect([...cx.memory.subarray(small, small + 4)]).toEqual([9, 8, 7, 6]);
    expect(cx.ptrCapacity(small)).toBe(16);
  });

  test("a large chunk gets a region of its own, given back on free", () => {
    const mcxt = memoryContextInit();
    const cx = allocSetContextCreate(mcxt.topMemoryContext, "ptrs", { pointers: true });
    const base = cx.memAllocated();
    const big = cx.allocPtr(50_000);
    expect(cx.ptrCapacity(big)).toBe(50_000);
    expect(cx.memAllocated()).toBe(base + 50_008);
    expect(mcxt.topMemoryContext.memAllocated(true)).toBeGreaterThanOrEqual(base + 50_008);
    cx.freePtr(big);
    expect(cx.memAllocated()).toBe(base);
    // The arena shrank, keeping room to grow again.
    expect(cx.memory.length).toBeLessThanOrEqual(16384);
    expect(() => cx.freePtr(big)).toThrow(/not a live chunk/);
  });

  test("regions of freed large chunks are merged and reused before the memory grows", () => {
    const mcxt = memoryContextInit();
    const cx = allocSetContextCreate(mcxt.topMemoryContext, "ptrs", { pointers: true });
    const a = cx.allocPtr(20_000);
    const b = cx.allocPtr(30_000);
    const c = cx.allocPtr(10_000);
    cx.freePtr(b);
    cx.freePtr(a);
    const length = cx.memory.length;
    const d = cx.allocPtr(50_000); // fits only in the merged hole of a and b
    expect(d).toBe(a);
    expect(cx.memory.length).toBe(length);
    cx.freePtr(c);
    cx.freePtr(d);
    expect(cx.memAllocated()).toBe(8192);
    expect(cx.stats().counters.nblocks).toBe(1);
  });

  test("allocZeroPtr zeroes what a freed chunk left behind", () => {
    const mcxt = memoryContextInit();
    const cx = allocSetContextCreate(mcxt.topMemoryContext, "ptrs", { pointers: true });
    const p = cx.allocPtr(64);
    cx.memory.fill(0xff, p, p + 64);
    cx.freePtr(p);
    const z = cx.allocZeroPtr(64);
    expect(z).toBe(p);
    expect(cx.memory.subarray(z, z + 64).every((b) => b === 0)).toBe(true);
  });
});

describe("pointer errors", () => {
  test("double free, interior and foreign pointers are refused", () => {
    const mcxt = memoryContextInit();
    const cx = allocSetContextCreate(mcxt.topMemoryContext, "ptrs", { pointers: true });
    const p = cx.allocPtr(64);
    expect(() => cx.freePtr(p + 8)).toThrow(
      'Cannot free pointer 16 in memory context "ptrs": it is not a live chunk (freed already, freed by a reset, or not the start of a chunk)',
    );
    expect(() => cx.freePtr(p + 3)).toThrow(TypeError);
    expect(() => cx.freePtr(1e9)).toThrow(/not a live chunk/);
    expect(() => cx.freePtr(-8)).toThrow("Cannot free pointer: expected a byte offset, got -8");
    expect(() => cx.freePtr(1.5)).toThrow("expected a byte offset, got 1.5");
    expect(() => cx.freePtr("16" as unknown as number)).toThrow("expected a byte offset");
    cx.freePtr(p);
    expect(() => cx.freePtr(p)).toThrow(/freed already/);
    expect(() => cx.reallocPtr(p, 10)).toThrow(/Cannot realloc pointer/);
    expect(() => cx.ptrCapacity(p)).toThrow(/Cannot get capacity of pointer/);
    expect(() => cx.allocPtr(-1)).toThrow(RangeError);
    expect(() => cx.allocPtr(0x40000000)).toThrow("Invalid memory alloc request size 1073741824");
  });

  test("a reset invalidates every pointer handed out before it, keeper ones included", () => {
    const mcxt = memoryContextInit();
    const cx = allocSetContextCreate(mcxt.topMemoryContext, "ptrs", {
      pointers: true,
      sizes: SIZES,
    });
    const inKeeper = cx.allocPtr(16);
    const ptrs = Array.from({ length: 50 }, () => cx.allocPtr(100));
    const inLaterBlock = ptrs[49]!;
    expect(inLaterBlock).toBeGreaterThan(1024);
    cx.reset();
    expect(() => cx.freePtr(inKeeper)).toThrow(/freed by a reset/);
    expect(() => cx.freePtr(inLaterBlock)).toThrow(/freed by a reset/);
    // The same offset handed out again after the reset is a new, live chunk.
    expect(cx.allocPtr(16)).toBe(inKeeper);
    cx.freePtr(inKeeper);
  });

  test("a context serves either pointers or Uint8Arrays, and says so", () => {
    const mcxt = memoryContextInit();
    const ptrs = allocSetContextCreate(mcxt.topMemoryContext, "ptrs", { pointers: true });
    const views = allocSetContextCreate(mcxt.topMemoryContext, "views");
    expect(views.isPointerContext).toBe(false);
    expect(() => ptrs.alloc(8)).toThrow(
      'Cannot alloc a Uint8Array chunk in memory context "ptrs": it hands out pointers (use allocPtr)',
    );
    expect(() => ptrs.free(views.alloc(8))).toThrow(/use freePtr/);
    expect(() => views.allocPtr(8)).toThrow(
      'Memory context "views" hands out Uint8Array chunks, not pointers (create it with pointers: true)',
    );
    expect(() => views.allocPtr(100_000)).toThrow(/not pointers/);
    expect(() => views.freePtr(8)).toThrow(/not pointers/);
    expect(() => views.memory).toThrow(/not pointers/);
    const slab = slabContextCreate(mcxt.topMemoryContext, "slab", { chunkSize: 32 });
    expect(() => slab.allocPtr(32)).toThrow(/slab allocator hands out Uint8Array chunks only/);
  });

  test("pointers of a deleted context are refused and its memory is gone", () => {
    const mcxt = memoryContextInit();
    const cx = allocSetContextCreate(mcxt.topMemoryContext, "ptrs", { pointers: true });
    const before = mcxt.topMemoryContext.memAllocated(true);
    const p = cx.allocPtr(64);
    cx.allocPtr(100_000);
    const memory = cx.memory;
    cx.delete();
    expect(mcxt.topMemoryContext.memAllocated(true)).toBe(before - 8192);
    expect(memory.length).toBe(0);
    expect(() => cx.freePtr(p)).toThrow(/it has been deleted/);
    expect(() => cx.allocPtr(8)).toThrow(
      'Cannot allocate in memory context "ptrs": it has been deleted',
    );
  });
});

/** Runs the same requests through views and through pointers. */
function sameWork(cx: MemoryContext, pointers: boolean, frees: boolean): void {
  const live: (number | Uint8Array)[] = [];
  let seed = 12345;
  for (let i = 0; i < 600; i++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const size = i % 97 === 0 ? 20_000 + (seed % 5000) : 1 + (seed % 1500);
    live.push(pointers ? cx.allocPtr(size) : cx.alloc(size));
    if (frees && seed % 3 === 0) {
      const victim = live.splice(seed % live.length, 1)[0]!;
      if (pointers) cx.freePtr(victim as number);
      else cx.free(victim as Uint8Array);
    }
  }
}

describe("pointer accounting", () => {
  test("AllocSet counts pointer chunks exactly as it counts Uint8Array chunks", () => {
    const mcxt = memoryContextInit();
    for (const sizes of [SIZES, undefined]) {
      const options = sizes === undefined ? {} : { sizes };
      const views = allocSetContextCreate(mcxt.topMemoryContext, "w", options);
      const ptrs = allocSetContextCreate(mcxt.topMemoryContext, "w", {
        ...options,
        pointers: true,
      });
      expect(ptrs.stats()).toEqual(views.stats());
      sameWork(views, false, true);
      sameWork(ptrs, true, true);
      expect(ptrs.stats()).toEqual(views.stats());
      expect(ptrs.memAllocated()).toBe(views.memAllocated());
      expect(ptrs.isEmpty()).toBe(false);
      views.reset();
      ptrs.reset();
      expect(ptrs.stats()).toEqual(views.stats());
      expect(ptrs.isEmpty()).toBe(true);
      expect(ptrs.memory.length).toBe(ptrs.memAllocated()); // back to the keeper
    }
  });

  test("Bump counts pointer chunks exactly as it counts Uint8Array chunks", () => {
    const mcxt = memoryContextInit();
    const views = bumpContextCreate(mcxt.topMemoryContext, "b", { sizes: SIZES });
    const ptrs = bumpContextCreate(mcxt.topMemoryContext, "b", { sizes: SIZES, pointers: true });
    sameWork(views, false, false);
    sameWork(ptrs, true, false);
    expect(ptrs.stats()).toEqual(views.stats());
    expect(ptrs.memAllocated()).toBe(views.memAllocated());
    views.reset();
    ptrs.reset();
    expect(ptrs.stats()).toEqual(views.stats());
    expect(ptrs.isEmpty()).toBe(true);
  });

  test("the keeper region survives a reset and the next message starts at offset 0", () => {
    const mcxt = memoryContextInit();
    const cx = bumpContextCreate(mcxt.topMemoryContext, "message", { pointers: true });
    expect(cx.allocPtr(10)).toBe(0);
    expect(cx.allocPtr(10)).toBe(16);
    for (let i = 0; i < 100; i++) cx.allocPtr(1000);
    expect(cx.memAllocated()).toBeGreaterThan(8192);
    cx.reset();
    expect(cx.memAllocated()).toBe(8192);
    expect(cx.memory.length).toBe(8192);
    expect(cx.allocPtr(10)).toBe(0);
    expect(() => cx.freePtr(0)).toThrow("pfree is not supported by the bump memory allocator");
    expect(() => cx.reallocPtr(0, 8)).toThrow(
      "realloc is not supported by the bump memory allocator",
    );
    expect(() => cx.freePtr(1e6)).toThrow(/not a live chunk/);
    cx.delete();
    expect(() => cx.allocPtr(8)).toThrow(/it has been deleted/);
  });

  test("pointer blocks count against limits, SQLSTATE 53200", () => {
    const mcxt = memoryContextInit({ limit: 128 * 1024 });
    const cx = allocSetContextCreate(mcxt.messageContext, "ExecutorState", { pointers: true });
    const e = catchError(() => cx.allocPtr(200_000)) as PgError;
    expect(e).toBeInstanceOf(PgError);
    expect(e.code).toBe("53200");
    expect(e.detail).toBe('Failed on request of size 200000 in memory context "ExecutorState".');
    const small = catchError(() => {
      for (let i = 0; i < 1000; i++) cx.allocPtr(1000);
    }) as PgError;
    expect(small.code).toBe("53200");
    expect(small.detail).toBe('Failed on request of size 1000 in memory context "ExecutorState".');
    expect(mcxt.topMemoryContext.memAllocated(true)).toBeLessThanOrEqual(128 * 1024);
    // Still usable once memory is given back.
    cx.reset();
    expect(cx.ptrCapacity(cx.allocPtr(1000))).toBe(1024);
  });

  test("a pointer context that cannot get its keeper is not created", () => {
    const mcxt = memoryContextInit();
    const parent = allocSetContextCreate(mcxt.topMemoryContext, "parent", { limit: 10 * 1024 });
    const e = catchError(() => bumpContextCreate(parent, "message", { pointers: true })) as PgError;
    expect(e.code).toBe("53200");
    expect(e.detail).toBe('Failed while creating memory context "message".');
    expect(parent.firstChild).toBeNull();
  });
});
