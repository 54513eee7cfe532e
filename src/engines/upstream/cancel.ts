/**
 * A CancelRequest to an upstream backend, and the writes that must not
 * overtake it.
 *
 * A cancel travels on a connection of its own and acts on whatever the
 * backend runs when it lands. Forwarded at once while the client's next
 * statement went out on the session's connection, it could reach the
 * backend after that statement did and cancel it instead: the same
 * client's next statement, or, in transaction mode, another client's that
 * got the connection. PostgreSQL closes the cancel's connection once it has
 * signalled the backend (and a backend that is idle by then drops the
 * cancel), so writes to the upstream connection wait until that close:
 * libpq's PQcancel waits for it the same way, and pgbouncer keeps such a
 * server from its next client. An upstream that keeps the cancel's
 * connection open past LANDING_MS is not waited for any longer.
 *
 * Used by both upstream sessions (session.ts, a connection of its own) and
 * pooled connections (server.ts).
 */

import type { Connection } from "../../core/adapter.ts";
import { MessageWriter, writeCancelRequest } from "../../core/protocol/mod.ts";

/** How long writes wait for a cancel's connection to be closed by the upstream. */
const LANDING_MS = 2000;

export class UpstreamCancel {
  readonly #connect: () => Promise<Connection>;
  readonly #write: (bytes: Uint8Array) => void;
  /** Cancels sent that the upstream has not answered by closing their connection. */
  #inFlight = 0;
  /** What was written meanwhile (copies), in order. */
  #held: Uint8Array[] = [];

  /**
   * `connect`: a new connection to the upstream backend's server;
   * `write`: the upstream connection's own write.
   */
  constructor(connect: () => Promise<Connection>, write: (bytes: Uint8Array) => void) {
    this.#connect = connect;
    this.#write = write;
  }

  /** Writes `bytes` to the upstream connection now, or once every cancel in flight has landed. */
  write(bytes: Uint8Array): void {
    // A copy: the caller's bytes may be a view of a buffer it reuses.
    if (this.#inFlight > 0) this.#held.push(bytes.slice());
    else this.#write(bytes);
  }

  /** Sends a CancelRequest for the backend `pid` with its `key`. */
  send(pid: number, key: number | Uint8Array): void {
    const bytes = MessageWriter.encode((w) => writeCancelRequest(w, pid, key));
    this.#inFlight++;
    let landed = false;
    let conn: Connection | null = null;
    const land = () => {
      if (landed) return;
      landed = true;
      clearTimeout(timer);
      conn?.destroy();
      if (--this.#inFlight > 0) return;
      for (const b of this.#held.splice(0)) this.#write(b);
    };
    const timer = setTimeout(land, LANDING_MS);
    this.#connect().then((c) => {
      conn = c;
      if (landed) {
        c.destroy();
        return;
      }
      // The upstream closes it once the backend is signalled: then it has landed.
      c.onClose = land;
      c.onData = () => {};
      c.write(bytes);
      c.resume();
    }, () => {
      // An upstream that cannot be reached has nothing to cancel.
      land();
    });
  }
}
