/**
 * The compiled binary's Worker entry: a child under `--adapter worker`.
 * Inside the binary a Worker is a realm of its own, so it registers the
 * embedded PGlite files again (an engine child opens PGlite) and resolves
 * pgts's own mains from the bundle, where `import()` of their source files
 * is impossible. src/bin/pgts.ts registers this entry with WorkerLauncher.
 */

import { serveWorkerChild } from "../adapters/worker/child.ts";
import { registerEmbeddedAssets } from "./embedded.ts";
import { resolveMain } from "../server/mains.ts";

// This entry's import.meta.url is its own path in the bundle (bin/worker.js).
registerEmbeddedAssets(new URL("../", import.meta.url));
serveWorkerChild({ resolveMain });
