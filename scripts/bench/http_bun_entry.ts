/** The fetch-handler example served by Bun.serve, for scripts/bench/http.ts (PORT from the environment). */

import process from "node:process";
import handler from "../../examples/fetch-handler/worker.ts";

declare const Bun: { serve(o: { port: number; fetch(r: Request): Promise<Response> }): unknown };
Bun.serve({ port: Number(process.env.PORT ?? 8000), fetch: (r) => handler.fetch(r) });
