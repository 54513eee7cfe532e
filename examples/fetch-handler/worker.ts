/**
 * pgts for any host that calls a `fetch(request)` handler: an edge
 * function's `export default { fetch }`, or `deno serve`. The server starts
 * on the first request and serves every later one from the same isolate.
 *
 *   deno serve -A --port 8000 examples/fetch-handler/worker.ts
 */

import { httpHandler } from "../../mod.ts";

export default httpHandler({
  engine: { dataDir: "memory://", placement: "inline" },
  // Demo only: any caller is trusted.
  hba: "host all all 0.0.0.0/0 trust\nhost all all ::/0 trust\n",
});
