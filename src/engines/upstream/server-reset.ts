/**
 * A pooled connection whose client left (pooled-session.ts's close),
 * brought back clean so that the pool may give it to another client: a
 * COPY IN failed, a statement still running cancelled, an input left
 * without Sync synced, the answers drained, an open transaction rolled
 * back, and a connection the client had pinned reset with
 * `server_reset_query` and its settings read afresh. Bounded by
 * CLOSE_TIMEOUT_MS: the caller closes a connection that is not clean by
 * then, or that failed on the way.
 */

import { FE } from "../../core/protocol/mod.ts";
import { parseSnapshot, snapshotSql } from "../pglite/settings.ts";
import { cstring, message } from "../pglite/wire.ts";
import type { AnswerRelay } from "./answers.ts";
import { NOT_SESSION_STATE } from "./client-settings.ts";
import type { PoolServer } from "./server.ts";

const CLOSE_TIMEOUT_MS = 5000;

/** What the cleaning asks of the session that left. */
export interface LeftClient {
  /** The session's request queue and answer relay, the connection's handler until now. */
  readonly answers: AnswerRelay;
  /** Whether the client kept the connection for good: it is then reset. */
  pinned(): boolean;
  /** The server_reset_query in force. */
  resetQuery(): string;
  /** Resolves once nothing is owed and no request is left. */
  drained(): Promise<void>;
}

/**
 * Brings `server` back clean for the pool: "clean", or "timeout" when it
 * took longer than CLOSE_TIMEOUT_MS; throws when a step failed.
 */
export async function cleanAfterClient(
  server: PoolServer,
  client: LeftClient,
): Promise<"clean" | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((
    r,
  ) => (timer = setTimeout(() => r("timeout"), CLOSE_TIMEOUT_MS)));
  try {
    return await Promise.race([clean(server, client), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function clean(server: PoolServer, client: LeftClient): Promise<"clean"> {
  const answers = client.answers;
  if (answers.copyIn) {
    server.write(message(FE.CopyFail, cstring("the client left")));
    answers.endCopy();
  }
  if (!answers.drained) {
    if (answers.owed > 0) server.cancel();
    else {
      // An input without Sync (Parse+Flush...): a Sync brings it to an end.
      server.write(message(FE.Sync));
      answers.push({ kind: FE.Sync, hidden: true, synthetic: null, done: null, rename: null });
    }
    await client.drained();
  }
  server.handler = null;
  if (server.status !== "I") {
    const r = await server.query("ROLLBACK");
    if (r.error !== null || r.status !== "I") throw r.error ?? new Error("not idle");
  }
  if (client.pinned()) {
    const reset = client.resetQuery();
    if (reset.trim() !== "") {
      const r = await server.query(reset);
      if (r.error !== null) throw r.error;
    }
    server.prepared.clear();
    const r = await server.query(snapshotSql([], NOT_SESSION_STATE));
    if (r.error !== null) throw r.error;
    server.carried = parseSnapshot(r.rows);
  }
  return "clean";
}
