/**
 * The entry of the compiled `pgts` binary (`scripts/build`, `bun build
 * --compile`); `bun mod.ts` and `deno run -A mod.ts` never load it. It
 * embeds PGlite's WASM and data files and registers them before anything
 * opens PGlite, because in a binary PGlite cannot find them through
 * `import.meta.url` (research Q1). Then it is what mod.ts's CLI block is: a
 * child when started with CHILD_FLAG (the binary's children are the binary
 * itself), the `pgts` command otherwise.
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
import process from "node:process";
import { runChildFromArgv } from "../adapters/bun/child.ts";
import { isCompiledBinary } from "../adapters/bun/launcher.ts";
import { registerPgliteAssets } from "../engines/pglite/assets.ts";
import { resolveBundledMain } from "./mains.ts";

registerPgliteAssets({
  pgliteWasm,
  initdbWasm,
  fsBundle,
  // scripts/build lists the engine's Worker as a second entry. Bun puts
  // each entry at its path below the entries' common folder (src/), while
  // every bundled module's import.meta.url is the binary's own
  // (/$bunfs/root/pgts): executor.ts alone would look in the wrong place.
  ...(isCompiledBinary()
    ? { executorWorker: new URL("./engines/pglite/executor-worker.ts", import.meta.url).href }
    : {}),
});

if (!runChildFromArgv(process.argv, { resolveMain: resolveBundledMain })) {
  const { main } = await import("../cli/main.ts");
  process.exit(await main(process.argv.slice(2)));
}
