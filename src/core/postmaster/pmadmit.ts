/**
 * Admitting clients (postmaster.c's ServerLoop accept path and
 * BackendStartup): a client accepted on a listen socket waits, with no
 * backend and no slot, until its first packet is whole (firstpacket.ts);
 * then the cluster state decides (canAcceptConnections) and
 * `PostmasterChildren.backendStartup` launches its backend or a dead-end
 * that turns it away. An in-process backend run (one HTTP request) is
 * judged the same way and takes a backend slot, and counts against
 * max_connections at once.
 *
 * While the postmaster cannot admit anyone (crash recovery) clients are
 * held, in arrival order, for pmstatemachine.ts to let in again. Called only
 * from the server loop, except `acceptConnection`, which only enqueues.
 */

import { canAcceptConnections, rejectionFor } from "./deadend.ts";
import { awaitFirstPacket } from "./firstpacket.ts";
import type { AcceptedConnection } from "../adapter.ts";
import type { PMContext } from "./pmcontext.ts";
import type { PMEvent } from "./pmstate.ts";
import type { PostmasterSettings } from "./settings.ts";

/**
 * A new client on a listen socket. With `readFirst` the postmaster reads its
 * first packet before queueing it (no backend until it is whole), within
 * authentication_timeout; otherwise it is queued at once.
 */
export function acceptConnection(
  pm: PMContext,
  conn: AcceptedConnection,
  readFirst: boolean,
): void {
  if (!readFirst) {
    pm.enqueue({ type: "connection", conn });
    return;
  }
  const acceptedAt = Date.now();
  pm.awaiting.add(conn);
  const timeoutMs = pm.settings.seconds("authentication_timeout") * 1000;
  void awaitFirstPacket(conn, { timeoutMs }).then((bytes) => {
    pm.awaiting.delete(conn);
    if (bytes === null) return;
    if (pm.exitCode !== null) {
      conn.destroy();
      return;
    }
    pm.firstPackets.set(conn, { bytes, acceptedAt });
    pm.enqueue({ type: "connection", conn });
  });
}

/** BackendStartup: admit the client and launch its backend, or turn it away. */
export async function backendStartup(pm: PMContext, conn: AcceptedConnection): Promise<void> {
  if (!pm.accepting) {
    // PostgreSQL stops polling its sockets here and the kernel queues new
    // clients; pgts queues them itself until crash recovery is done.
    pm.held.push(conn);
    return;
  }
  const cac = canAcceptConnections({
    pmState: pm.pmState,
    shutdown: pm.shutdown,
    fatalError: pm.fatalError,
    connsAllowed: pm.connsAllowed,
  });
  const timeoutMs = pm.settings.seconds("authentication_timeout") * 1000;
  const first = pm.firstPackets.get(conn);
  pm.firstPackets.delete(conn);
  await pm.children!.backendStartup(conn, {
    cac,
    timeoutMs,
    ...(first !== undefined ? { first } : {}),
  });
}

/** BackendStartup for an in-process run: no dead-end to serve, the refusal is the answer. */
export function admitBackendRun(
  pm: PMContext,
  ev: Extract<PMEvent, { type: "backend-run" }>,
): void {
  const cac = pm.accepting
    ? canAcceptConnections({
      pmState: pm.pmState,
      shutdown: pm.shutdown,
      fatalError: pm.fatalError,
      connsAllowed: pm.connsAllowed,
    })
    : "CAC_RECOVERY";
  const registry = pm.children!.registry;
  let child = cac === "CAC_OK" ? registry.assignSlot("backend", ev.name) : null;
  // A run is authenticated already: it takes one of max_connections now.
  const maxConnections = pm.settings.int("max_connections");
  if (
    child !== null && registry.claimConnection(child, { maxConnections, reserved: 0 }) !== "ok"
  ) {
    registry.release(child);
    child = null;
  }
  if (child === null) {
    ev.admitted(rejectionFor(cac === "CAC_OK" ? "CAC_TOOMANY" : cac));
    return;
  }
  if (ev.activity !== undefined) child.activity = ev.activity;
  pm.children!.adopt(child, ev.proc);
  ev.admitted(null);
}

/**
 * Backends the postmaster lets live at once (MaxLivePostmasterChildren):
 * twice max_connections and the worker slots, as in PostgreSQL, because a
 * backend still reading its startup packet or authenticating holds no
 * connection yet. max_connections itself is checked after authentication
 * (the "claim-connection" request), so clients that connect and send
 * nothing cannot lock out the ones that log in.
 */
export function maxLiveBackends(settings: PostmasterSettings): number {
  return 2 * (settings.int("max_connections") + settings.int("max_worker_processes"));
}
