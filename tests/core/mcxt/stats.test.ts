import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import {
  ALLOCSET_SMALL_SIZES,
  allocSetContextCreate,
  bumpContextCreate,
  getBackendMemoryContexts,
  memoryContextInit,
  memoryContextMemConsumed,
  memoryContextStats,
  memoryContextStatsLog,
  slabContextCreate,
} from "../../../src/core/mcxt/mod.ts";

const fixture = readFileSync(new URL("../../fixtures/mcxt-stats.txt", import.meta.url), "utf8");

/** The standard tree with known allocations (see the fixture for the numbers). */
function knownTree() {
  const mcxt = memoryContextInit();
  slabContextCreate(mcxt.topTransactionContext, "pool", { chunkSize: 40, blockSize: 1024 });
  const pool = mcxt.topTransactionContext.firstChild!;
  for (let i = 0; i < 3; i++) pool.alloc(40);
  mcxt.messageContext.alloc(100);
  const parse = bumpContextCreate(mcxt.messageContext, "parse", {
    sizes: ALLOCSET_SMALL_SIZES,
    ident: "SELECT 1",
  });
  parse.alloc(10);
  // 8200 bytes do not fit the keeper: its 8192 bytes are cut into 7 free
  // chunks (4096, 2048, 1024, 512, 256, 128, 64 + headers, 8 bytes left)
  // and a 16 KB block is started.
  mcxt.cacheMemoryContext.alloc(8000);
  mcxt.postmasterContext!.alloc(20_000); // a dedicated 20008-byte block
  return mcxt;
}

describe("MemoryContextStats", () => {
  test("the text matches PostgreSQL's format exactly", () => {
    expect(memoryContextStats(knownTree().topMemoryContext)).toBe(fixture);
    expect(knownTree().stats()).toBe(fixture);
  });

  test("the log variant prefixes each line with its level", () => {
    const lines = memoryContextStatsLog(knownTree().topMemoryContext);
    expect(lines[0]).toBe(
      "level: 1; TopMemoryContext: 8192 total in 1 blocks; 8192 free (0 chunks); 0 used",
    );
    expect(lines[2]).toBe(
      "level: 3; pool: 1024 total in 1 blocks; 0 empty blocks; 864 free (18 chunks); 160 used",
    );
    expect(lines[4]).toBe("level: 3; parse: 1024 total in 1 blocks; 1008 free; 16 used: SELECT 1");
    expect(lines.at(-1)).toBe(
      "Grand total: 87592 bytes in 10 blocks; 59072 free (25 chunks); 28520 used",
    );
    const fixtureLines = fixture.trimEnd().split("\n");
    expect(lines.map((l) => l.replace(/^level: \d+; /, ""))).toEqual(
      fixtureLines.map((l) => l.trimStart()),
    );
  });

  test("children beyond maxChildren are summarised on one line", () => {
    const mcxt = memoryContextInit();
    const parent = allocSetContextCreate(mcxt.topMemoryContext, "parent");
    for (let i = 0; i < 5; i++) {
      const c = allocSetContextCreate(parent, `c${i}`, { sizes: ALLOCSET_SMALL_SIZES });
      c.alloc(24);
    }
    allocSetContextCreate(parent.children()[4]!, "grandchild", { sizes: ALLOCSET_SMALL_SIZES });
    const text = memoryContextStats(parent, { maxChildren: 2 });
    expect(text).toBe(
      [
        "parent: 8192 total in 1 blocks; 8192 free (0 chunks); 0 used",
        // 24 bytes take a 32-byte chunk and its 8-byte header
        "  c4: 1024 total in 1 blocks; 984 free (0 chunks); 40 used",
        "  c3: 1024 total in 1 blocks; 984 free (0 chunks); 40 used",
        // c2, c1 and c0, and c0's grandchild: four contexts
        "  4 more child contexts containing 4096 total in 4 blocks; 3976 free (0 chunks); 120 used",
        "Grand total: 14336 bytes in 7 blocks; 14136 free (0 chunks); 200 used",
        "",
      ].join("\n"),
    );
    const log = memoryContextStatsLog(parent, { maxChildren: 2 });
    expect(log[3]).toStartWith("level: 1; 4 more child contexts containing 4096 total");
  });

  test("contexts below maxLevel are summarised under their parent", () => {
    const mcxt = memoryContextInit();
    const a = allocSetContextCreate(mcxt.topMemoryContext, "a", { sizes: ALLOCSET_SMALL_SIZES });
    const b = allocSetContextCreate(a, "b", { sizes: ALLOCSET_SMALL_SIZES });
    allocSetContextCreate(b, "c", { sizes: ALLOCSET_SMALL_SIZES });
    expect(memoryContextStats(a, { maxLevel: 1 })).toBe(
      [
        "a: 1024 total in 1 blocks; 1024 free (0 chunks); 0 used",
        "  b: 1024 total in 1 blocks; 1024 free (0 chunks); 0 used",
        "    1 more child contexts containing 1024 total in 1 blocks; 1024 free (0 chunks); 0 used",
        "Grand total: 3072 bytes in 3 blocks; 3072 free (0 chunks); 0 used",
        "",
      ].join("\n"),
    );
  });

  test("idents are cut at 100 bytes with dots, control characters shown as spaces", () => {
    const mcxt = memoryContextInit();
    const long = "é".repeat(60); // 120 bytes of UTF-8
    const ctx = allocSetContextCreate(mcxt.topMemoryContext, "CachedPlan", {
      sizes: ALLOCSET_SMALL_SIZES,
      ident: long,
    });
    const line = memoryContextStats(ctx).split("\n")[0]!;
    expect(line).toEndWith(`used: ${"é".repeat(50)}...`);
    ctx.setIdentifier("SELECT 1\nFROM t");
    expect(memoryContextStats(ctx).split("\n")[0]).toEndWith("used: SELECT 1 FROM t");
    const hash = allocSetContextCreate(mcxt.topMemoryContext, "dynahash", {
      sizes: ALLOCSET_SMALL_SIZES,
      ident: "Portal hash",
    });
    expect(memoryContextStats(hash)).toStartWith("Portal hash: 1024 total");
  });

  test("memoryContextMemConsumed adds up a subtree", () => {
    const mcxt = knownTree();
    expect(memoryContextMemConsumed(mcxt.messageContext)).toEqual({
      nblocks: 2,
      freechunks: 0,
      totalspace: 8192 + 1024,
      freespace: 8056 + 1008,
    });
  });
});

describe("pg_backend_memory_contexts", () => {
  test("rows carry the view's columns, breadth first with ancestor paths", () => {
    const rows = getBackendMemoryContexts(knownTree().topMemoryContext);
    expect(rows.map((r) => [r.name, r.level, r.path])).toEqual([
      ["TopMemoryContext", 1, [1]],
      ["TopTransactionContext", 2, [1, 2]],
      ["MessageContext", 2, [1, 3]],
      ["CacheMemoryContext", 2, [1, 4]],
      ["PostmasterContext", 2, [1, 5]],
      ["ErrorContext", 2, [1, 6]],
      ["pool", 3, [1, 2, 7]],
      ["parse", 3, [1, 3, 8]],
    ]);
    expect(rows[7]).toEqual({
      name: "parse",
      ident: "SELECT 1",
      type: "Bump",
      level: 3,
      path: [1, 3, 8],
      total_bytes: 1024,
      total_nblocks: 1,
      free_bytes: 1008,
      free_chunks: 0,
      used_bytes: 16,
    });
    expect(rows[6]!.type).toBe("Slab");
    expect(rows[3]).toMatchObject({
      type: "AllocSet",
      ident: null,
      total_bytes: 24576,
      total_nblocks: 2,
      free_bytes: 16376,
      free_chunks: 7,
      used_bytes: 8200,
    });
    expect(knownTree().backendMemoryContexts()).toEqual(rows);
  });
});
