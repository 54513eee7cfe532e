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
 * The cluster image (src/engines/pglite/image.ts) and the extension
 * bundles (src/engines/pglite/extensions.ts) are embedded too, but not
 * imported: scripts/build makes the image (a gzipped tar, about 5 MB),
 * copies the bundles (1.5 MB of gzip) and lists them as more entries, so
 * they exist only in the binary; Bun lists them in `Bun.embeddedFiles`
 * and serves them under the binary's /$bunfs root.
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
import { fileURLToPath } from "node:url";
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
  const image = embeddedFiles(root, IMAGE_NAME)[0];
  if (image !== undefined) registerClusterImage(image);
  registerPgliteAssets({
    pgliteWasm,
    initdbWasm,
    fsBundle,
    ...(isCompiledBinary()
      ? {
        executorWorker: new URL("engines/pglite/executor-worker.ts", root).href,
        extensionBundles: embeddedFiles(root, EXTENSION_BUNDLE_NAME),
      }
      : {}),
  });
}

/**
 * The names scripts/build gives the image and each extension bundle; Bun
 * adds a hash before the last extension of each.
 */
const IMAGE_NAME = /(^|\/)cluster-image[^/]*\.gz$/;
const EXTENSION_BUNDLE_NAME = /(^|\/)pgts-extension-[^/]*\.gz$/;

/**
 * The paths of the binary's embedded files whose names match (none outside
 * a binary). Bun serves them below the bundle's root, whichever entry asks.
 */
function embeddedFiles(root: URL, pattern: RegExp): string[] {
  const bun = (globalThis as { Bun?: { embeddedFiles?: readonly Blob[] } }).Bun;
  if (!isCompiledBinary()) return [];
  const paths: string[] = [];
  for (const file of bun?.embeddedFiles ?? []) {
    const name = (file as Blob & { name?: string }).name ?? "";
    if (pattern.test(name)) paths.push(fileURLToPath(new URL(name, root)));
  }
  return paths.sort();
}
