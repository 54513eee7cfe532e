/**
 * The entry of the compiled `pgts` binary (`scripts/build`, `bun build
 * --compile`); `bun mod.ts` and `deno run -A mod.ts` never load it. It
 * embeds PGlite's WASM and data files and registers them before anything
 * opens PGlite, because PGlite looks for them next to its own module
 * (`import.meta.url`), which in a binary is /$bunfs/root, where they are
 * not: opening fails with ENOENT for /$bunfs/root/pglite.data. Then it is
 * what mod.ts's CLI block is: a child when started with CHILD_FLAG (the
 * binary's children are the binary itself), the `pgts` command otherwise.
 *
 * The embedded files are embedded.ts's; the binary's Workers (children
 * under `--adapter worker`) start from its other entry, worker.ts, and
 * register them in their own realm.
 */

import process from "node:process";
import { runChildFromArgv } from "../adapters/bun/child.ts";
import { isCompiledBinary } from "../adapters/bun/launcher.ts";
import { registerWorkerEntry } from "../adapters/worker/launcher.ts";
import { registerEmbeddedAssets } from "./embedded.ts";
import { resolveMain } from "../server/mains.ts";

// Inside the binary this module's import.meta.url is the binary's own
// (/$bunfs/root/pgts), and the other entries sit at their paths below src/.
const root = new URL("./", import.meta.url);
registerEmbeddedAssets(root);
if (isCompiledBinary()) registerWorkerEntry(new URL("bin/worker.ts", root).href);

if (!runChildFromArgv(process.argv, { resolveMain })) {
  const { main } = await import("../cli/main.ts");
  process.exit(await main(process.argv.slice(2)));
}
