import { describe, expect, test } from "bun:test";
import { memoryContextInit, slabContextCreate } from "../../../src/core/mcxt/mod.ts";

function fresh(chunkSize = 40, blockSize = 1024) {
  const mcxt = memoryContextInit();
  return { mcxt, ctx: slabContextCreate(mcxt.topMemoryContext, "slab", { chunkSize, blockSize }) };
}

describe("Slab", () => {
  test("every chunk has the one size; others are refused", () => {
    const { ctx } = fresh();
    const a = ctx.alloc(40);
    expect(a.length).toBe(40);
    expect(a.byteOffset).toBe(8);
    expect(ctx.alloc(40).byteOffset).toBe(8 + 48);
    expect(() => ctx.alloc(41)).toThrow("Unexpected alloc chunk size 41 (expected 40)");
  });

  test("a block that is too small for one chunk is refused", () => {
    const mcxt = memoryContextInit();
    expect(() =>
      slabContextCreate(mcxt.topMemoryContext, "tiny", { chunkSize: 2000, blockSize: 1024 })
    ).toThrow("Block size 1024 for slab is too small for 2000-byte chunks");
  });

  test("a freed slot is reused with the same view", () => {
    const { ctx } = fresh();
    const a = ctx.alloc(40);
    ctx.free(a);
    expect(ctx.alloc(40)).toBe(a);
  });

  test("allocation fills the fullest block first", () => {
    const { ctx } = fresh(40, 1024); // 21 chunks per block
    const chunks = Array.from({ length: 63 }, () => ctx.alloc(40)); // three full blocks
    const [b1, b2, b3] = [chunks[0]!.buffer, chunks[21]!.buffer, chunks[42]!.buffer];
    // Free 5 in block 1 and 2 in block 2: block 2 is the fuller one.
    for (let i = 0; i < 5; i++) ctx.free(chunks[i]!);
    for (let i = 21; i < 23; i++) ctx.free(chunks[i]!);
    expect(ctx.alloc(40).buffer).toBe(b2);
    expect(ctx.alloc(40).buffer).toBe(b2);
    expect(ctx.alloc(40).buffer).toBe(b1);
    expect(b3).not.toBe(b1);
  });

  test("entirely free blocks are kept up to ten and counted as empty", () => {
    const { ctx } = fresh(40, 1024);
    const chunks = Array.from({ length: 21 * 13 }, () => ctx.alloc(40));
    for (const c of chunks) ctx.free(c);
    const line = ctx.stats().line;
    // The current block stays in use; of the twelve others, ten are kept.
    expect(line).toBe(
      "11264 total in 1 blocks; 10 empty blocks; 1008 free (21 chunks); 10256 used",
    );
    expect(ctx.memAllocated()).toBe(11 * 1024);
    expect(ctx.isEmpty()).toBe(true);
  });

  test("double free, free after reset and a foreign view are errors", () => {
    const { ctx } = fresh();
    const a = ctx.alloc(40);
    ctx.free(a);
    expect(() => ctx.free(a)).toThrow("not a live chunk");
    const b = ctx.alloc(40);
    ctx.reset();
    expect(() => ctx.free(b)).toThrow("its block was released");
    expect(() => ctx.free(new Uint8Array(40))).toThrow("not allocated by a memory context");
  });

  test("realloc only accepts the chunk size", () => {
    const { ctx } = fresh();
    const a = ctx.alloc(40);
    expect(ctx.realloc(a, 40)).toBe(a);
    expect(() => ctx.realloc(a, 80)).toThrow("slab allocator does not support realloc()");
  });

  test("stats follow PostgreSQL's slab line", () => {
    const { ctx } = fresh();
    ctx.alloc(40);
    expect(ctx.stats().line).toBe(
      "1024 total in 1 blocks; 0 empty blocks; 960 free (20 chunks); 64 used",
    );
  });
});
