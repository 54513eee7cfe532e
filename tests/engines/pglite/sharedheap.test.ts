/**
 * shareMemoryImports: a module that imports a non-shared memory links
 * against a shared one once rewritten, keeps its other imports, and is left
 * alone when it has nothing to rewrite. pglite.wasm itself, rewritten,
 * still compiles with every import it had.
 */

import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { HEAP_MAX_PAGES, shareMemoryImports } from "../../../src/engines/pglite/sharedheap.ts";

/**
 * (module (import "env" "f" (func)) (import "env" "memory" (memory 1 [max]))
 *   (func (export "peek") (result i32) (i32.load (i32.const 0))))
 */
function module(max: number | null): Uint8Array {
  const limits = max === null ? [0x00, 0x01] : [0x01, 0x01, max];
  const imports = [
    0x02, // two imports
    0x03,
    ..."env".split("").map((c) => c.charCodeAt(0)),
    0x01,
    0x66,
    0x00,
    0x00,
    0x03,
    ..."env".split("").map((c) => c.charCodeAt(0)),
    0x06,
    ..."memory".split("").map((c) => c.charCodeAt(0)),
    0x02,
    ...limits,
  ];
  return Uint8Array.from([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    // types: () -> (), () -> i32
    0x01,
    0x08,
    0x02,
    0x60,
    0x00,
    0x00,
    0x60,
    0x00,
    0x01,
    0x7f,
    0x02,
    imports.length,
    ...imports,
    0x03,
    0x02,
    0x01,
    0x01, // one function of type 1
    0x07,
    0x08,
    0x01,
    0x04,
    0x70,
    0x65,
    0x65,
    0x6b,
    0x00,
    0x01, // export "peek" = func 1
    0x0a,
    0x09,
    0x01,
    0x07,
    0x00,
    0x41,
    0x00,
    0x28,
    0x02,
    0x00,
    0x0b, // i32.load (i32.const 0)
  ]);
}

test("a non-shared memory import becomes shared and links against a shared memory", async () => {
  for (const max of [null, 4]) {
    const bytes = module(max);
    const memory = new WebAssembly.Memory(
      { initial: 1, maximum: 4, shared: true } as WebAssembly.MemoryDescriptor,
    );
    const imports = { env: { f: () => {}, memory } };
    await expect(WebAssembly.instantiate(bytes, imports)).rejects.toThrow();
    const shared = shareMemoryImports(bytes, max === null ? 4 : HEAP_MAX_PAGES);
    const { instance } = await WebAssembly.instantiate(shared, imports);
    new Int32Array(memory.buffer)[0] = 42;
    expect((instance.exports.peek as () => number)()).toBe(42);
    expect(shareMemoryImports(shared, HEAP_MAX_PAGES)).toBe(shared);
  }
});

test("pglite.wasm rewritten keeps its imports and exports the interrupt flags", async () => {
  const path = new URL("./pglite.wasm", import.meta.resolve("@electric-sql/pglite"));
  const stock = await WebAssembly.compile(readFileSync(path));
  const shared = await WebAssembly.compile(
    shareMemoryImports(readFileSync(path), HEAP_MAX_PAGES) as Uint8Array<ArrayBuffer>,
  );
  expect(WebAssembly.Module.imports(shared)).toEqual(WebAssembly.Module.imports(stock));
  const exported = WebAssembly.Module.exports(shared).map((e) => e.name);
  for (const flag of ["InterruptPending", "QueryCancelPending"]) expect(exported).toContain(flag);
});

test("in place: the same bytes as the copy when the section keeps its length, else a copy", () => {
  // (memory 1 4) becomes (memory 1 4 shared): same length, written over the input.
  const sized = module(4);
  const copy = shareMemoryImports(sized, HEAP_MAX_PAGES);
  const inPlace = shareMemoryImports(sized, HEAP_MAX_PAGES, true);
  expect(inPlace).toBe(sized);
  expect(Array.from(inPlace)).toEqual(Array.from(copy));
  // (memory 1) grows by the maximum it gains: a copy, the input untouched.
  const open = module(null);
  const before = Array.from(open);
  const grown = shareMemoryImports(open, 4, true);
  expect(grown).not.toBe(open);
  expect(grown.length).toBeGreaterThan(open.length);
  expect(Array.from(open)).toEqual(before);
  expect(Array.from(grown)).toEqual(Array.from(shareMemoryImports(module(null), 4)));
});

test("pglite.wasm is rewritten in place (a 9 MB copy saved at every start)", () => {
  const path = new URL("./pglite.wasm", import.meta.resolve("@electric-sql/pglite"));
  const read = readFileSync(path);
  const copy = shareMemoryImports(readFileSync(path), HEAP_MAX_PAGES);
  expect(Buffer.compare(read, Buffer.from(copy))).not.toBe(0);
  expect(shareMemoryImports(read, HEAP_MAX_PAGES, true)).toBe(read);
  expect(Buffer.compare(read, Buffer.from(copy))).toBe(0);
});
