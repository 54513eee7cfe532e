import { describe, expect, test } from "bun:test";
import {
  ALLOCSET_SMALL_SIZES,
  bumpContextCreate,
  memoryContextInit,
} from "../../../src/core/mcxt/mod.ts";

function fresh() {
  const mcxt = memoryContextInit();
  return { mcxt, ctx: bumpContextCreate(mcxt.topMemoryContext, "bump") };
}

describe("Bump", () => {
  test("chunks are consecutive 8-aligned runs with no header", () => {
    const { ctx } = fresh();
    const a = ctx.alloc(3);
    const b = ctx.alloc(9);
    const c = ctx.alloc(0);
    expect(ctx.type).toBe("Bump");
    expect([a.byteOffset, b.byteOffset, c.byteOffset]).toEqual([0, 8, 24]);
    expect([a.length, b.length, c.length]).toEqual([3, 9, 0]);
    expect(ctx.stats().line).toBe("8192 total in 1 blocks; 8168 free; 24 used");
  });

  test("free and realloc are not supported", () => {
    const { mcxt, ctx } = fresh();
    const a = ctx.alloc(8);
    expect(() => ctx.free(a)).toThrow("pfree is not supported by the bump memory allocator");
    expect(() => mcxt.pfree(a)).toThrow("pfree is not supported by the bump memory allocator");
    expect(() => ctx.realloc(a, 16)).toThrow(
      "realloc is not supported by the bump memory allocator",
    );
    expect(() => ctx.free(new Uint8Array(8))).toThrow("not allocated by a memory context");
  });

  test("reset gives everything back but the keeper block", () => {
    const { ctx } = fresh();
    const keeper = ctx.alloc(8).buffer;
    for (let i = 0; i < 100; i++) ctx.alloc(1000);
    ctx.alloc(2_000_000); // above the chunk limit: a block of its own
    expect(ctx.stats().counters.nblocks).toBeGreaterThan(3);
    ctx.reset();
    expect(ctx.stats().counters.nblocks).toBe(1);
    expect(ctx.memAllocated()).toBe(8192);
    expect(ctx.isEmpty()).toBe(true);
    expect(ctx.alloc(8).buffer).toBe(keeper);
  });

  test("the same message layout after a reset gets the same views back", () => {
    const { ctx } = fresh();
    const first = [ctx.alloc(10), ctx.alloc(20)];
    ctx.reset();
    const second = [ctx.alloc(10), ctx.alloc(20)];
    expect(second[0]).toBe(first[0]!);
    expect(second[1]).toBe(first[1]!);
    ctx.reset();
    expect(ctx.alloc(11)).not.toBe(first[0]!); // another length needs another view
  });

  test("blocks double up to the maximum; large requests get their own block", () => {
    const mcxt = memoryContextInit();
    const ctx = bumpContextCreate(mcxt.topMemoryContext, "small", { sizes: ALLOCSET_SMALL_SIZES });
    const buffers: ArrayBufferLike[] = [];
    for (let i = 0; i < 64; i++) {
      const b = ctx.alloc(512).buffer;
      if (!buffers.includes(b)) buffers.push(b);
    }
    expect(buffers.slice(0, 5).map((b) => b.byteLength)).toEqual([1024, 1024, 2048, 4096, 8192]);
    const big = ctx.alloc(5000);
    expect(big.buffer.byteLength).toBe(5000);
  });

  test("a deleted Bump context refuses to allocate", () => {
    const { ctx } = fresh();
    ctx.delete();
    expect(() => ctx.alloc(1)).toThrow("has been deleted");
  });
});
