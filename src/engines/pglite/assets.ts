/**
 * Where PGlite's WASM and data files come from. By default PGlite finds
 * pglite.wasm, initdb.wasm and pglite.data next to its own module, through
 * `import.meta.url` under node_modules. A compiled binary has no such files
 * (opening PGlite there fails with `ENOENT ... /$bunfs/root/pglite.data`),
 * so its entry (src/bin/pgts.ts) imports embedded copies and registers them
 * here before anything opens PGlite; instance.ts then hands them to PGlite as
 * `pgliteWasmModule`, `initdbWasmModule` and `fsBundle`.
 *
 * A registration belongs to one realm: a Worker that opens PGlite gets the
 * sources in its open message (workerexecutor.ts). Sources are paths (Bun gives a
 * `type: "bytes"` import as a path into the binary's /$bunfs) or bytes
 * (Deno, with --unstable-raw-imports). Nothing here ever reaches for
 * node_modules; without a registration PGlite's own lookup is untouched.
 */

import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface PgliteAssetSources {
  readonly pgliteWasm: string | Uint8Array;
  readonly initdbWasm: string | Uint8Array;
  readonly fsBundle: string | Uint8Array;
  /**
   * Where the bundle put executor-worker.ts, when it is not next to
   * workerexecutor.ts: in a compiled binary every module's `import.meta.url` is
   * the binary's own, so workerexecutor.ts cannot find its Worker by itself.
   */
  readonly executorWorker?: string;
  /**
   * The extension bundles (extensions.ts), where the packages that ship
   * them are not on disk: a compiled binary's embedded copies.
   */
  readonly extensionBundles?: readonly string[];
}

/** What PGlite.create takes for its assets; empty when none are registered. */
export interface PgliteAssetOptions {
  pgliteWasmModule?: WebAssembly.Module;
  initdbWasmModule?: WebAssembly.Module;
  fsBundle?: Blob;
}

let registered: PgliteAssetSources | null = null;
let compiled: Promise<Required<PgliteAssetOptions>> | null = null;

/** Makes every later PGlite open in this realm use these assets. */
export function registerPgliteAssets(sources: PgliteAssetSources): void {
  for (const name of ["pgliteWasm", "initdbWasm", "fsBundle"] as const) {
    const source = sources[name];
    if (typeof source !== "string" && !(source instanceof Uint8Array)) {
      throw new TypeError(`PGlite asset "${name}" must be a path or a Uint8Array`);
    }
  }
  registered = sources;
  compiled = null;
}

/** The registered sources, to pass on to another realm; null when PGlite finds its own. */
export function registeredPgliteAssets(): PgliteAssetSources | null {
  return registered;
}

function bytes(source: string | Uint8Array): Uint8Array<ArrayBuffer> {
  if (typeof source === "string") return readFileSync(source);
  // Copied only when it sits in shared memory, which Blob does not take.
  return source.buffer instanceof ArrayBuffer
    ? source as Uint8Array<ArrayBuffer>
    : new Uint8Array(source);
}

/**
 * The PGlite.create options for the registered assets, compiled once per
 * realm: an engine that opens PGlite twice (initdb's inner instance, a
 * reopen) pays for WebAssembly.compile once.
 */
export function pgliteAssetOptions(): Promise<PgliteAssetOptions> {
  const sources = registered;
  if (sources === null) return Promise.resolve({});
  if (compiled !== null) return compiled;
  const promise = (async () => {
    const [pgliteWasmModule, initdbWasmModule] = await Promise.all([
      WebAssembly.compile(bytes(sources.pgliteWasm)),
      WebAssembly.compile(bytes(sources.initdbWasm)),
    ]);
    return { pgliteWasmModule, initdbWasmModule, fsBundle: new Blob([bytes(sources.fsBundle)]) };
  })();
  // A failed read or compile is not cached: the next open tries again.
  promise.catch(() => {
    if (compiled === promise) compiled = null;
  });
  compiled = promise;
  return promise;
}

/**
 * The SHA-256 (hex) of the pglite.wasm this realm's PGlite runs: the
 * registered copy, else the one next to PGlite's module; null when neither
 * can be read. tempnamespace.ts identifies the build by it. Started before
 * PGlite opens, so that the read overlaps with the open.
 */
export async function pgliteWasmSha256(): Promise<string | null> {
  try {
    let data: Uint8Array<ArrayBuffer>;
    if (registered !== null) data = bytes(registered.pgliteWasm);
    else {
      const dir = dirname(fileURLToPath(import.meta.resolve("@electric-sql/pglite")));
      data = await readFile(join(dir, "pglite.wasm"));
    }
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
    return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  } catch {
    return null;
  }
}
