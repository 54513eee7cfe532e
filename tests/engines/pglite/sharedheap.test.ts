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
