/**
 * The pages of PGlite's heap that dlmalloc holds free, given back to the
 * kernel (heaptrim.ts), on made-up heaps laid out as dlmalloc's: its state
 * found by its shape (refused when there are none or two), the free chunks
 * large enough listed (the top, the designated victim, the tree bins' chunks
 * and their rings of one size; not a chunk whose header disagrees, not a
 * tree bin its map says is empty), and a trim that zeroes the whole pages
 * inside those chunks and not one byte outside them. (A MiB of whole pages
 * is enough here, to keep the heaps small; the engine's trim asks 8 MB.) What it does on the
 * engine: tests/e2e/hostile/memory_comes_back_after_a_connection_flood.test.ts.
 */

import { describe, expect, test } from "bun:test";
import {
  findMallocState,
  freePages,
  HeapTrimmer,
  largeFreeChunks,
  treeIndex,
} from "../../../src/engines/pglite/heaptrim.ts";

const HEAP_BASE = 64 * 1024;
const MiB = 1024 * 1024;
/** Offsets in dlmalloc's malloc_state (wasm32). */
const TREEBINS = 40 + 33 * 8;

/** A free chunk's header: its size with PINUSE, and its fd (itself unless given). */
function chunk(v: DataView, at: number, size: number, fd = at): void {
  v.setUint32(at + 4, size | 1, true);
  v.setUint32(at + 8, fd, true);
}

/**
 * A 24 MiB heap with malloc states at `states` whose top is a 2 MiB chunk
 * at 20 MiB; the rest of the heap filled with 0xAB.
 */
function heapWith(buffer: ArrayBufferLike, ...states: number[]): DataView {
  const v = new DataView(buffer);
  new Uint8Array(buffer, HEAP_BASE).fill(0xab);
  for (const a of states) {
    v.setUint32(a + 40 + 8, a + 40, true);
    v.setUint32(a + 40 + 12, a + 40, true);
    v.setUint32(a + 48 + 8, a + 48, true);
    v.setUint32(a + 48 + 12, a + 48, true);
    v.setUint32(a + 36, 0x5a5a5a58, true); // magic
    v.setUint32(a + 16, HEAP_BASE, true); // least_addr
    v.setUint32(a + 24, 20 * MiB, true); // top
    v.setUint32(a + 12, 2 * MiB, true); // topsize
  }
  chunk(v, 20 * MiB, 2 * MiB);
  return v;
}

const buffer = () => new ArrayBuffer(24 * MiB);

describe("finding dlmalloc's state", () => {
  test("one: found by its shape, or at the known address of a known build", () => {
    expect(findMallocState(heapWith(buffer(), 4096), HEAP_BASE, null)).toBe(4096);
    expect(findMallocState(heapWith(buffer(), 4096), HEAP_BASE, "no such build")).toBe(4096);
  });

  test("none, two, or one whose top's header disagrees with topsize: 0", () => {
    expect(findMallocState(heapWith(buffer()), HEAP_BASE, null)).toBe(0);
    expect(findMallocState(heapWith(buffer(), 4096, 8192), HEAP_BASE, null)).toBe(0);
    const v = heapWith(buffer(), 4096);
    chunk(v, 20 * MiB, 3 * MiB);
    expect(findMallocState(v, HEAP_BASE, null)).toBe(0);
  });
});

describe("the free chunks listed", () => {
  test("the top, the designated victim, each tree's chunks, their children and rings", () => {
    const a = 4096;
    const v = heapWith(buffer(), a);
    v.setUint32(a + 20, 1 * MiB, true); // dv
    v.setUint32(a + 8, 2 * MiB, true); // dvsize
    chunk(v, 1 * MiB, 2 * MiB);
    // Tree bin 27 (3 to 4 MiB): a root of 3 MiB in a ring with another, a
    // child of 3.5 MiB.
    v.setUint32(a + 4, 1 << 27, true);
    v.setUint32(a + TREEBINS + 4 * 27, 4 * MiB, true);
    chunk(v, 4 * MiB, 3 * MiB, 8 * MiB);
    chunk(v, 8 * MiB, 3 * MiB, 4 * MiB);
    v.setUint32(4 * MiB + 16, 12 * MiB, true);
    v.setUint32(4 * MiB + 20, 0, true);
    chunk(v, 12 * MiB, 3.5 * MiB);
    v.setUint32(12 * MiB + 16, 0, true);
    v.setUint32(12 * MiB + 20, 0, true);
    // A stale root in bin 28, whose map bit is clear.
    v.setUint32(a + TREEBINS + 4 * 28, 17 * MiB, true);
    chunk(v, 17 * MiB, 2 * MiB);
    expect(largeFreeChunks(v, a, HEAP_BASE, MiB).sort((x, y) => x[0] - y[0])).toEqual([
      [1 * MiB, 2 * MiB],
      [4 * MiB, 3 * MiB],
      [8 * MiB, 3 * MiB],
      [12 * MiB, 3.5 * MiB],
      [20 * MiB, 2 * MiB],
    ]);
  });

  test("a chunk with less than a MiB of whole pages inside, or whose size is not its list's: not listed", () => {
    const a = 4096;
    const v = heapWith(buffer(), a);
    v.setUint32(a + 20, 1 * MiB, true);
    v.setUint32(a + 8, 1 * MiB, true); // a MiB, but its first page holds the header
    chunk(v, 1 * MiB, 1 * MiB);
    // Tree bin 0 (256 to 384 bytes) with a 3 MiB root and its child.
    v.setUint32(a + 4, 1, true);
    v.setUint32(a + TREEBINS, 4 * MiB, true);
    chunk(v, 4 * MiB, 3 * MiB);
    v.setUint32(4 * MiB + 16, 8 * MiB, true);
    v.setUint32(4 * MiB + 20, 0, true);
    chunk(v, 8 * MiB, 3 * MiB);
    expect(largeFreeChunks(v, a, HEAP_BASE, MiB)).toEqual([[20 * MiB, 2 * MiB]]);
    v.setUint32(a + 8, 3 * MiB, true); // dvsize, not what the dv's header says
    expect(largeFreeChunks(v, a, HEAP_BASE, MiB)).toEqual([[20 * MiB, 2 * MiB]]);
  });

  test("the tree bins' sizes are dlmalloc's", () => {
    expect([255, 256, 383, 384, 511, 512, 3 * MiB, 4 * MiB - 1, 4 * MiB, 1 << 30].map(treeIndex))
      .toEqual([0, 0, 0, 1, 1, 2, 27, 27, 28, 31]);
  });

  test("the pages given: whole ones, past the chunk's fields, short of its end", () => {
    expect(freePages(1 * MiB, 2 * MiB, MiB)).toEqual({ from: 1 * MiB + 4096, to: 3 * MiB });
    expect(freePages(1 * MiB + 8, 2 * MiB, MiB)).toEqual({ from: 1 * MiB + 4096, to: 3 * MiB });
    expect(freePages(1 * MiB, 1 * MiB + 4096, MiB)).toEqual({
      from: 1 * MiB + 4096,
      to: 2 * MiB + 4096,
    });
    expect(freePages(1 * MiB, 1 * MiB, MiB)).toBeNull();
    // The engine's: 8 MiB of whole pages.
    expect(freePages(1 * MiB, 8 * MiB)).toBeNull();
    expect(freePages(1 * MiB, 8 * MiB + 4096)).toEqual({
      from: 1 * MiB + 4096,
      to: 9 * MiB + 4096,
    });
  });
});

for (const shared of [true, false]) {
  test(
    `a trim zeroes the whole pages inside the free chunks, and not a byte outside them (${
      shared ? "shared" : "unshared"
    } memory)`,
    () => {
      const memory = new WebAssembly.Memory({ initial: 384, maximum: 1024, shared });
      const a = 4096;
      const v = heapWith(memory.buffer, a);
      v.setUint32(a + 20, 1 * MiB, true);
      v.setUint32(a + 8, 2 * MiB, true);
      chunk(v, 1 * MiB, 2 * MiB);
      const trimmer = HeapTrimmer.open(memory, HEAP_BASE, null, MiB);
      if (trimmer === null) throw new Error("no madvise here (Linux, glibc, bun:ffi expected)");
      const before = new Uint8Array(memory.buffer).slice();
      expect(trimmer.trim()).toBe(2 * MiB - 4096 + 2 * MiB - 4096);
      const after = new Uint8Array(memory.buffer);
      const freed = (i: number) =>
        (i >= 1 * MiB + 4096 && i < 3 * MiB) || (i >= 20 * MiB + 4096 && i < 22 * MiB);
      let changedOutside = 0;
      let keptInside = 0;
      for (let i = 0; i < after.length; i++) {
        if (freed(i)) keptInside += after[i] === 0 ? 0 : 1;
        else changedOutside += after[i] === before[i] ? 0 : 1;
      }
      expect({ changedOutside, keptInside }).toEqual({ changedOutside: 0, keptInside: 0 });
      trimmer.close();
    },
  );
}
