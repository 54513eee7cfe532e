/**
 * PGlite with its heap in shared memory, so that a thread other than the
 * one running a statement can set Postgres's interrupt flags while the
 * statement computes (interrupt.ts).
 *
 * PGlite's pglite.wasm imports its memory (`env.memory`, 2048 pages at
 * first, at most 32768) as non-shared, and PGlite creates it as such. The
 * flags CHECK_FOR_INTERRUPTS reads inline (`InterruptPending`,
 * `QueryCancelPending`) live in that memory, and the module exports their
 * addresses; no host call happens in a pure computation, so a host-call
 * hook alone cannot stop one. Here the memory import's limits are rewritten
 * to `shared` (a shared memory must have a maximum, which the main module
 * has; side modules get PGlite's), the copy is compiled once per realm, and
 * instance.ts instantiates it with a shared `WebAssembly.Memory` of the same
 * size in place of PGlite's.
 *
 * What a shared heap changes, checked under Bun and Deno: `memory.buffer`
 * is a SharedArrayBuffer (TextDecoder takes views of it; `slice()` of a view
 * is an ordinary copy), growth replaces the buffer as before, and an
 * extension's library (a side module importing the same memory) must be
 * rewritten the same way before it is loaded (extensions.ts).
 *
 * Never changes the file on disk, and nothing else than the memory import.
 */

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { registeredPgliteAssets } from "./assets.ts";

/** PGlite's own maximum for its memory, in 64 KiB pages (2 GiB). */
export const HEAP_MAX_PAGES = 32768;

const SECTION_IMPORT = 2;
const IMPORT_FUNC = 0;
const IMPORT_TABLE = 1;
const IMPORT_MEMORY = 2;
const IMPORT_GLOBAL = 3;
const IMPORT_TAG = 4;
const LIMITS_HAS_MAX = 0x01;
const LIMITS_SHARED = 0x02;
const LIMITS_SHARED_WITH_MAX = 0x03;
const LIMITS_MEMORY64 = 0x04;

function readU32(b: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  let mul = 1;
  let i = at;
  for (;;) {
    const byte = b[i++];
    if (byte === undefined) throw new RangeError("Truncated LEB128 in WebAssembly module");
    value += (byte & 0x7f) * mul;
    mul *= 128;
    if ((byte & 0x80) === 0) return [value, i];
  }
}

function u32(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/**
 * A copy of a WebAssembly binary whose memory imports are shared, with
 * `maxPages` as the maximum of an import that has none. Returns the input
 * itself when it imports no memory, or only shared ones. `inPlace`: the
 * caller owns `wasm`, and when the rewritten import section is as long as
 * the old one (pglite.wasm's is: its import has a maximum already) it is
 * written over the old and `wasm` returned, modified: a copy of 9 MB is
 * 9 MB of fresh pages, tens of ms on the start's critical path.
 */
export function shareMemoryImports(
  wasm: Uint8Array,
  maxPages: number,
  inPlace = false,
): Uint8Array {
  let at = 8;
  while (at < wasm.length) {
    const id = wasm[at]!;
    const [size, body] = readU32(wasm, at + 1);
    const end = body + size;
    if (id !== SECTION_IMPORT) {
      at = end;
      continue;
    }
    let [count, p] = readU32(wasm, body);
    const skipName = () => {
      const [n, next] = readU32(wasm, p);
      p = next + n;
    };
    const skipLimits = () => {
      const flags = wasm[p++]!;
      p = readU32(wasm, p)[1];
      if ((flags & LIMITS_HAS_MAX) !== 0) p = readU32(wasm, p)[1];
    };
    // With `p` just past a limits' flags byte (read at p - 1).
    const skipLimitsAfterFlags = () => {
      p--;
      skipLimits();
    };
    // The section rebuilt: unchanged runs copied, each memory's limits re-encoded.
    const parts: Uint8Array[] = [];
    let copied = body;
    let changed = false;
    while (count-- > 0) {
      skipName();
      skipName();
      const kind = wasm[p++]!;
      switch (kind) {
        case IMPORT_FUNC:
          p = readU32(wasm, p)[1];
          break;
        case IMPORT_TABLE:
          p++;
          skipLimits();
          break;
        case IMPORT_GLOBAL:
          p += 2;
          break;
        case IMPORT_TAG:
          p++;
          p = readU32(wasm, p)[1];
          break;
        case IMPORT_MEMORY: {
          const limitsAt = p;
          const flags = wasm[p++]!;
          if ((flags & LIMITS_SHARED) !== 0) {
            skipLimitsAfterFlags();
            break;
          }
          if ((flags & LIMITS_MEMORY64) !== 0) {
            throw new RangeError("A 64-bit memory cannot be shared here");
          }
          const [min, afterMin] = readU32(wasm, p);
          p = afterMin;
          let max = maxPages;
          if ((flags & LIMITS_HAS_MAX) !== 0) [max, p] = readU32(wasm, p);
          parts.push(wasm.subarray(copied, limitsAt));
          parts.push(Uint8Array.from([LIMITS_SHARED_WITH_MAX, ...u32(min), ...u32(max)]));
          copied = p;
          changed = true;
          break;
        }
        default:
          throw new RangeError(`Unknown import kind ${kind} in WebAssembly module`);
      }
    }
    if (!changed) return wasm;
    parts.push(wasm.subarray(copied, end));
    const sectionSize = parts.reduce((n, part) => n + part.length, 0);
    const header = Uint8Array.from([SECTION_IMPORT, ...u32(sectionSize)]);
    if (inPlace && header.length + sectionSize === end - at) {
      // Same length: each part goes back where it was, or one changed limit's width on.
      const section = Uint8Array.from(parts.flatMap((part) => Array.from(part)));
      wasm.set(header, at);
      wasm.set(section, at + header.length);
      return wasm;
    }
    const out = new Uint8Array(at + header.length + sectionSize + (wasm.length - end));
    out.set(wasm.subarray(0, at));
    let w = at;
    for (const part of [header, ...parts]) {
      out.set(part, w);
      w += part.length;
    }
    out.set(wasm.subarray(end), w);
    return out;
  }
  return wasm;
}

let compiled: { source: unknown; module: Promise<WebAssembly.Module> } | null = null;

/**
 * pglite.wasm's bytes: the registered copy (a compiled binary's, not ours
 * to change) or the package's file, ours: under Bun mapped copy-on-write
 * (Bun.mmap), else read (under Deno, and a compiled binary's embedded
 * file, which has no file to map). Reading 9 MB into a new buffer is 9 MB of
 * fresh pages, ~30 ms before the compile can begin; a private mapping
 * shares the page cache's and copies only the pages written (the import
 * section: shareMemoryImports in place).
 */
function pgliteWasmBytes(): { bytes: Uint8Array; owned: boolean } {
  const source = registeredPgliteAssets()?.pgliteWasm;
  if (source instanceof Uint8Array) return { bytes: source, owned: false };
  const path = typeof source === "string" ? source : fileURLToPath(
    new URL("./pglite.wasm", import.meta.resolve("@electric-sql/pglite")),
  );
  return { bytes: mapped(path) ?? readFileSync(path), owned: true };
}

/** `path` mapped copy-on-write, or null (not Bun; a compiled binary's embedded file: read it). */
function mapped(path: string): Uint8Array | null {
  if (mapPrivate === null) return null;
  try {
    return mapPrivate(path, { shared: false });
  } catch {
    return null;
  }
}

/** Bun.mmap, where there is one. */
const mapPrivate = (() => {
  const bun = (globalThis as {
    Bun?: { mmap?: (path: string, options: { shared: boolean }) => Uint8Array };
  }).Bun;
  const mmap = bun?.mmap;
  return typeof mmap === "function"
    ? (path: string, options: { shared: boolean }) => mmap.call(bun, path, options)
    : null;
})();

/**
 * pglite.wasm with a shared memory import, compiled once per realm (and
 * again only if the registered assets change). A failure is not cached.
 */
export function sharedPgliteModule(): Promise<WebAssembly.Module> {
  const source = registeredPgliteAssets()?.pgliteWasm ?? null;
  if (compiled !== null && compiled.source === source) return compiled.module;
  return adoptPgliteModule(compilePgliteModule());
}

/** Compiles pglite.wasm with a shared memory import, uncached. */
export async function compilePgliteModule(): Promise<WebAssembly.Module> {
  const { bytes: read, owned } = pgliteWasmBytes();
  const bytes = shareMemoryImports(read, HEAP_MAX_PAGES, owned);
  return await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
}

/**
 * Makes `module` this realm's compiled pglite.wasm (for the registered
 * assets): an engine's Worker takes the one its starter compiled and
 * posted (a WebAssembly.Module is shared between the threads of a process,
 * machine code and all), so that neither it nor the Worker of each further
 * database compiles the 9 MB again. A failure is not cached.
 */
export function adoptPgliteModule(
  module: Promise<WebAssembly.Module>,
): Promise<WebAssembly.Module> {
  const source = registeredPgliteAssets()?.pgliteWasm ?? null;
  const entry = { source, module };
  module.catch(() => {
    if (compiled === entry) compiled = null;
  });
  compiled = entry;
  return module;
}

/** A shared memory for PGlite of `pages` pages at first (PGlite's own size). */
export function sharedHeap(pages: number): WebAssembly.Memory {
  return new WebAssembly.Memory(
    { initial: pages, maximum: HEAP_MAX_PAGES, shared: true } as WebAssembly.MemoryDescriptor,
  );
}

/** What of PGlite's Emscripten module shareLibrariesOnOpen needs. */
interface PgliteModule {
  readonly FS: {
    open(path: string, flags: unknown, mode?: unknown): unknown;
    readFile(path: string): Uint8Array;
    writeFile(path: string, data: Uint8Array): void;
  };
}

/** The first bytes of every WebAssembly module. */
const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d];

/**
 * Makes each library PGlite opens (plpgsql.so and the other modules
 * Postgres dlopens on first use; Emscripten's dlopen reads the file
 * through the file system's open and read) import a shared memory: the
 * first open of a `.so` rewrites the file (shareMemoryImports) before it
 * is read. Rewriting all 28 libraries of PGlite's file bundle at start
 * instead (2.7 MB read, re-encoded and written back) took ~40 ms of every
 * engine's start, for libraries most sessions never load. Must run before
 * the first dlopen.
 */
export function shareLibrariesOnOpen(db: unknown): void {
  const mod = (db as { mod?: PgliteModule }).mod;
  if (mod === undefined) throw new TypeError("PGlite has no Emscripten module to rewrite");
  const fs = mod.FS;
  const open = fs.open;
  /** Libraries known to import the shared memory (until written again). */
  const shared = new Set<string>();
  /** readFile and writeFile open the file too. */
  let rewriting = false;
  fs.open = function (path: string, flags: unknown, mode?: unknown): unknown {
    if (!rewriting && typeof path === "string" && path.endsWith(".so")) {
      if (!readOnly(flags)) shared.delete(path);
      else if (!shared.has(path)) {
        rewriting = true;
        try {
          if (shareFile(fs, path)) shared.add(path);
        } finally {
          rewriting = false;
        }
      }
    }
    return open.call(this, path, flags, mode);
  };
}

/** Whether Emscripten's FS.open `flags` ('r', 'w+', … or O_* bits) open for reading only. */
function readOnly(flags: unknown): boolean {
  if (typeof flags === "string") return flags === "r";
  return typeof flags === "number" && (flags & 3) === 0 && (flags & 0o1000) === 0; // O_ACCMODE, O_TRUNC
}

/**
 * Rewrites `path` to import a shared memory when it is a WebAssembly
 * module; whether it is one now (false: not there, or not a module).
 */
function shareFile(fs: PgliteModule["FS"], path: string): boolean {
  let data: Uint8Array;
  try {
    data = fs.readFile(path);
  } catch {
    return false; // not there: the open that follows says so
  }
  if (data.length < 8 || !WASM_MAGIC.every((b, i) => data[i] === b)) return false;
  const shared = shareMemoryImports(data, HEAP_MAX_PAGES);
  if (shared !== data) fs.writeFile(path, shared);
  return true;
}
