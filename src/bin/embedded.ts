/**
 * PGlite's WASM and data files, embedded in the compiled binary, and their
 * registration for the realm that imports this module (src/bin/pgts.ts for
 * the binary's main thread, src/bin/worker.ts for each of its Workers).
 *
 * Bun hands a `type: "bytes"` import over as a path (into /$bunfs once
 * compiled). Deno rejects such imports without --unstable-raw-imports, which
 * is why only this file has them; deno.json turns the flag on so that
 * `deno check` still types this file (as Uint8Array).
 *
 * The cluster image (src/engines/pglite/image.ts) is embedded too, but not
 * imported: scripts/build makes it (a gzipped tar, about 5 MB) and lists it
 * as one more entry, so it exists only in the binary; Bun lists it in
 * `Bun.embeddedFiles` and serves it under the binary's /$bunfs root.
 */

import pgliteWasm from "../../node_modules/@electric-sql/pglite/dist/pglite.wasm" with {
  type: "bytes",
};
import initdbWasm from "../../node_modules/@electric-sql/pglite/dist/initdb.wasm" with {
  type: "bytes",
};
import fsBundle from "../../node_modules/@electric-sql/pglite/dist/pglite.data" with {
  type: "bytes",
};
import { dirname, join } from "node:path";
import { isCompiledBinary } from "../adapters/bun/launcher.ts";
import { registerPgliteAssets } from "../engines/pglite/assets.ts";
import { registerClusterImage } from "../engines/pglite/image.ts";

/**
 * Registers the embedded files for every later PGlite open in this realm.
 * `root` is the bundle's src/: scripts/build lists the engine's Worker
 * (executor-worker.ts) as an entry, which Bun puts at its path below the
 * entries' common folder, where workerexecutor.ts's own `import.meta.url` (the
 * importing entry's) would not find it.
 */
export function registerEmbeddedAssets(root: URL): void {
  registerEmbeddedImage();
  registerPgliteAssets({
    pgliteWasm,
    initdbWasm,
    fsBundle,
    ...(isCompiledBinary()
      ? { executorWorker: new URL("engines/pglite/executor-worker.ts", root).href }
      : {}),
  });
}

/** The name scripts/build gives the image; Bun adds a hash before its last extension. */
const IMAGE_NAME = /(^|\/)cluster-image[^/]*\.gz$/;

/** Registers the binary's embedded cluster image, if it has one (none outside a binary). */
function registerEmbeddedImage(): void {
  const bun = (globalThis as { Bun?: { main?: string; embeddedFiles?: readonly Blob[] } }).Bun;
  if (!isCompiledBinary() || bun?.main === undefined) return;
  for (const file of bun.embeddedFiles ?? []) {
    const name = (file as Blob & { name?: string }).name ?? "";
    if (IMAGE_NAME.test(name)) registerClusterImage(join(dirname(bun.main), name));
  }
}
