/**
 * PGlite's WASM and data files, embedded in the compiled binary, and their
 * registration for the realm that imports this module (src/bin/pgts.ts for
 * the binary's main thread, src/bin/worker.ts for each of its Workers).
 *
 * Bun hands a `type: "bytes"` import over as a path (into /$bunfs once
 * compiled). Deno rejects such imports without --unstable-raw-imports, which
 * is why only this file has them; deno.json turns the flag on so that
 * `deno check` still types this file (as Uint8Array).
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
import { isCompiledBinary } from "../adapters/bun/launcher.ts";
import { registerPgliteAssets } from "../engines/pglite/assets.ts";

/**
 * Registers the embedded files for every later PGlite open in this realm.
 * `root` is the bundle's src/: scripts/build lists the engine's Worker
 * (executor-worker.ts) as an entry, which Bun puts at its path below the
 * entries' common folder, where executor.ts's own `import.meta.url` (the
 * importing entry's) would not find it.
 */
export function registerEmbeddedAssets(root: URL): void {
  registerPgliteAssets({
    pgliteWasm,
    initdbWasm,
    fsBundle,
    ...(isCompiledBinary()
      ? { executorWorker: new URL("engines/pglite/executor-worker.ts", root).href }
      : {}),
  });
}
