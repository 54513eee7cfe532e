/**
 * pgts in front of a regional PostgreSQL, for a host that calls a
 * `fetch(request)` handler and has no file system (an edge function). Each
 * request is a backend run whose SQL goes to the upstream over TCP, on a
 * connection of its own; clients log in with their upstream role and
 * password (checked against the upstream's pg_authid).
 *
 *   PGTS_UPSTREAM=postgres://pgts:secret@db.internal:5432/app \
 *     deno serve -A --port 8000 examples/fetch-handler/upstream.ts
 */

import { httpHandler } from "../../mod.ts";

export default httpHandler({
  // pgts's own credentials upstream: a role that can read pg_authid and may
  // become the client roles (see src/engines/upstream/README.md).
  engine: Deno.env.get("PGTS_UPSTREAM") ?? "postgres://postgres@127.0.0.1:5432/postgres",
  hba: "host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n",
});
