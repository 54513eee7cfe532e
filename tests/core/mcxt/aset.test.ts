import { describe, expect, test } from "bun:test";
import {
  ALLOCSET_DEFAULT_SIZES,
  ALLOCSET_SMALL_SIZES,
  ALLOCSET_START_SMALL_SIZES,
  allocSetContextCreate,
  memoryContextInit,
} from "../../../src/core/mcxt/mod.ts";

function fresh(name = "work", sizes = ALLOCSET_DEFAULT_SIZES) {
  const mcxt = memoryContextInit();
  return { mcxt, ctx: allocSetContextCreate(mcxt.topMemoryContext, name, { sizes }) };
}

describe("AllocSet", () => {
  test("the three size presets are PostgreSQL's", () => {
    expect(ALLOCSET_DEFAULT_SIZES).toEqual({
      minContextSize: 0,
      initBlockSize: 8192,
      maxBlockSize: 8 * 1024 * 1024,
    });
    expect(ALLOCSET_SMALL_SIZES).toEqual({
      minContextSize: 0,
      initBlockSize: 1024,
      maxBlockSize: 8192,
    });
    expect(ALLOCSET_START_SMALL_SIZES).toEqual({
      minContextSize: 0,
      initBlockSize: 1024,
      maxBlockSize: 8 * 1024 * 1024,
    });
  });

  test("the chunk limit is 8 KB, halved until four chunks fit in a maximum block", () => {
    expect(fresh().ctx.chunkLimit).toBe(8192);
    expect(fresh("s", ALLOCSET_SMALL_SIZES).ctx.chunkLimit).toBe(1024);
    expect(fresh("ss", ALLOCSET_START_SMALL_SIZES).ctx.chunkLimit).toBe(8192);
  });

  test("alloc returns a view of the requested length into a block's ArrayBuffer", () => {
    const { ctx } = fresh();
    const a = ctx.alloc(100);
    const b = ctx.alloc(100);
    expect(a).toBeInstanceOf(Uint8Array);
    expect(a.length).toBe(100);
    expect(a.buffer).toBe(b.buffer); // same block
    expect(a.buffer.byteLength).toBe(8192);
    expect(a.byteOffset).toBe(8); // after its 8-byte header
    expect(b.byteOffset).toBe(8 + 128 + 8); // 100 rounds up to 128
    a.fill(1);
    b.fill(2);
    expect(a.every((x) => x === 1)).toBe(true);
  });

  test("alloc(0) is valid and can be freed", () => {
    const { ctx } = fresh();
    const z = ctx.alloc(0);
    expect(z.length).toBe(0);
    ctx.free(z);
  });

  test("freed chunks are reused from power-of-two freelists, 8 B and up", () => {
    const { ctx } = fresh();
    const a = ctx.alloc(40); // 64-byte class
    const offset = a.byteOffset;
    ctx.free(a);
    expect(ctx.stats().counters.freechunks).toBe(1);
    const b = ctx.alloc(50); // same class: same place
    expect(b.byteOffset).toBe(offset);
    expect(b.length).toBe(50);
    const tiny = ctx.alloc(1);
    ctx.free(tiny);
    expect(ctx.alloc(8).byteOffset).toBe(tiny.byteOffset);
  });

  test("a freed view of the same length is handed out again as is", () => {
    const { ctx } = fresh();
    const a = ctx.alloc(48);
    ctx.free(a);
    expect(ctx.alloc(48)).toBe(a);
  });

  test("block sizes double from init to max", () => {
    const { ctx } = fresh("grow", ALLOCSET_SMALL_SIZES);
    const buffers: ArrayBufferLike[] = [];
    for (let i = 0; i < 40; i++) {
      const buffer = ctx.alloc(1000).buffer; // a 1 KB chunk + 8-byte header
      if (!buffers.includes(buffer)) buffers.push(buffer);
    }
    // The 1 KB keeper cannot hold 1032 bytes; the next blocks go 1 KB
    // (doubled to fit: 2 KB), 2 KB, 4 KB, then 8 KB, the maximum, for good.
    expect(buffers.slice(0, 6).map((b) => b.byteLength)).toEqual([
      2048,
      2048,
      4096,
      8192,
      8192,
      8192,
    ]);
  });

  test("a chunk above the limit gets a dedicated block, released on free", () => {
    const { ctx } = fresh();
    const before = ctx.memAllocated();
    const big = ctx.alloc(10_000);
    expect(big.length).toBe(10_000);
    expect(big.buffer.byteLength).toBe(10_008);
    expect(ctx.memAllocated()).toBe(before + 10_008);
    ctx.free(big);
    expect(ctx.memAllocated()).toBe(before);
    expect(() => ctx.free(big)).toThrow("its block was released");
  });

  test("reset keeps the keeper block and releases the others", () => {
    const { ctx } = fresh();
    const first = ctx.alloc(16);
    const keeper = first.buffer;
    for (let i = 0; i < 20; i++) ctx.alloc(1000);
    ctx.alloc(100_000);
    expect(ctx.stats().counters.nblocks).toBeGreaterThan(2);
    ctx.reset();
    expect(ctx.stats().counters.nblocks).toBe(1);
    expect(ctx.memAllocated()).toBe(8192);
    expect(ctx.alloc(16).buffer).toBe(keeper);
  });

  test("minContextSize sizes the keeper block", () => {
    const mcxt = memoryContextInit();
    const ctx = allocSetContextCreate(mcxt.topMemoryContext, "big-keeper", {
      sizes: { minContextSize: 64 * 1024, initBlockSize: 8192, maxBlockSize: 65536 },
    });
    expect(ctx.memAllocated()).toBe(65536);
  });

  test("realloc keeps a chunk in place while it fits and moves it otherwise", () => {
    const { ctx } = fresh();
    const a = ctx.alloc(20);
    a.set([1, 2, 3]);
    const same = ctx.realloc(a, 30); // 32-byte class
    expect(same.byteOffset).toBe(a.byteOffset);
    expect(same.length).toBe(30);
    const moved = ctx.realloc(same, 300);
    expect(moved.byteOffset).not.toBe(a.byteOffset);
    expect([...moved.subarray(0, 3)]).toEqual([1, 2, 3]);
    expect(() => ctx.free(same)).toThrow("not a live chunk");
    const large = ctx.realloc(moved, 20_000);
    expect([...large.subarray(0, 3)]).toEqual([1, 2, 3]);
    const shrunk = ctx.realloc(large, 2);
    expect([...shrunk]).toEqual([1, 2]);
    ctx.free(shrunk);
  });

  test("a double free is an error, not a corrupted freelist", () => {
    const { ctx } = fresh();
    const a = ctx.alloc(64);
    ctx.free(a);
    expect(() => ctx.free(a)).toThrow(
      'Cannot free chunk in memory context "work": it is not a live chunk',
    );
    expect(ctx.stats().counters.freechunks).toBe(1);
  });

  test("a free after reset is an error, in the keeper block as in others", () => {
    const { ctx } = fresh();
    const inKeeper = ctx.alloc(64);
    const elsewhere = ctx.alloc(50_000);
    ctx.reset();
    expect(() => ctx.free(inKeeper)).toThrow("not a live chunk");
    expect(() => ctx.free(elsewhere)).toThrow(
      'its block was released by a reset or delete of memory context "work"',
    );
  });

  test("a free after delete is an error", () => {
    const { mcxt, ctx } = fresh();
    const a = ctx.alloc(64);
    ctx.delete();
    expect(() => ctx.free(a)).toThrow("its block was released");
    expect(() => mcxt.pfree(a)).toThrow("its block was released");
  });

  test("a context that takes a deleted context's keeper block sees none of its bytes or chunks", () => {
    const { mcxt, ctx } = fresh();
    ctx.alloc(64);
    const a = ctx.alloc(64); // the second chunk: nothing of the next owner's is there yet
    a.fill(0xab);
    ctx.reset(); // a reset leaves the bytes in the keeper
    ctx.alloc(32).fill(0xcd);
    ctx.delete();
    const next = allocSetContextCreate(mcxt.topMemoryContext, "next");
    const c = next.alloc(64);
    expect(c.buffer).toBe(a.buffer); // the keeper was recycled, as aset.c recycles contexts
    const bytes = new Uint8Array(c.buffer);
    expect(bytes.includes(0xab) || bytes.includes(0xcd)).toBe(false);
    expect(() => next.free(a)).toThrow("not a live chunk");
    expect(() => ctx.alloc(8)).toThrow('memory context "work": it has been deleted');
    expect(next.stats().line).toBe("8192 total in 1 blocks; 8120 free (0 chunks); 72 used");
    next.free(c);
  });

  test("a free of a foreign Uint8Array is an error", () => {
    const { ctx } = fresh();
    expect(() => ctx.free(new Uint8Array(16))).toThrow(
      "Cannot free chunk: it was not allocated by a memory context of this tree",
    );
  });

  test("a free of part of a chunk or of another context's chunk is an error", () => {
    const { mcxt, ctx } = fresh();
    const a = ctx.alloc(64);
    expect(() => ctx.free(a.subarray(8))).toThrow("not a live chunk");
    const other = allocSetContextCreate(mcxt.topMemoryContext, "other");
    expect(() => other.free(a)).toThrow(
      'Cannot free chunk in memory context "other": it belongs to memory context "work"',
    );
    expect(() => ctx.realloc(new Uint8Array(4), 8)).toThrow("Cannot realloc chunk");
    ctx.free(a);
  });

  test("sizes that are not valid requests are refused", () => {
    const { ctx } = fresh();
    expect(() => ctx.alloc(-1)).toThrow("Invalid memory alloc request size -1");
    expect(() => ctx.alloc(1.5)).toThrow(RangeError);
    expect(() => ctx.alloc(0x40000000)).toThrow("Invalid memory alloc request size 1073741824");
  });

  test("allocZero zeroes a reused chunk", () => {
    const { ctx } = fresh();
    const a = ctx.alloc(32);
    a.fill(255);
    ctx.free(a);
    expect([...ctx.allocZero(32)].every((x) => x === 0)).toBe(true);
  });

  test("stats count blocks, free space and freelist chunks", () => {
    const { ctx } = fresh();
    const a = ctx.alloc(100); // 128 + 8
    ctx.alloc(10); // 16 + 8
    ctx.free(a);
    expect(ctx.stats().line).toBe("8192 total in 1 blocks; 8168 free (1 chunks); 24 used");
  });

  test("invalid block sizes are refused and leave no context behind", () => {
    const mcxt = memoryContextInit();
    const n = mcxt.topMemoryContext.children().length;
    expect(() =>
      allocSetContextCreate(mcxt.topMemoryContext, "bad", {
        sizes: { minContextSize: 0, initBlockSize: 100, maxBlockSize: 8192 },
      })
    ).toThrow('Invalid block sizes for memory context "bad"');
    expect(mcxt.topMemoryContext.children().length).toBe(n);
  });
});
