/**
 * pgts on Deno Deploy: every request is a backend run of an in-memory
 * PGlite cluster (Deploy has no writable file system; for lasting data,
 * pass `engine: "postgres://user:password@host:port/db"` to put pgts in front
 * of a real PostgreSQL, as examples/fetch-handler/upstream.ts does).
 * Query it with `neon(url)` and `neonConfig.fetchEndpoint = "https://<app>/sql"`.
 *
 *   deno run -A examples/deno-deploy/main.ts     (locally, port 8000)
 *   deployctl deploy --entrypoint=examples/deno-deploy/main.ts
 */

import { httpHandler } from "../../mod.ts";

const handler = httpHandler({
  engine: { dataDir: "memory://", placement: "inline" },
  // Demo only: any caller is trusted. Give roles passwords and use
  // scram-sha-256 lines for anything that matters.
  hba: "host all all 0.0.0.0/0 trust\nhost all all ::/0 trust\n",
  // The admin API, when PGTS_ADMIN_TOKEN is set ("" leaves it off).
  adminToken: Deno.env.get("PGTS_ADMIN_TOKEN") ?? "",
});

Deno.serve({ port: Number(Deno.env.get("PORT") ?? 8000) }, handler.fetch);
