/**
 * Dead-end backends: how the postmaster turns away a client it will not
 * serve (PostgreSQL's B_DEAD_END_BACKEND and canAcceptConnections /
 * BackendStartup's CAC_* states).
 *
 * PostgreSQL forks a dead-end child so that a slow client cannot stall the
 * postmaster. pgts serves it inside the postmaster instead, as an
 * asynchronous task that never blocks the server loop: it reads the startup
 * packet (bounded by authentication_timeout), sends one FATAL ErrorResponse
 * and closes. A dead-end never touches shared state, so it can outlive a
 * crash and is the last thing the postmaster waits for (PM_WAIT_DEAD_END).
 */

import { ERRCODE } from "../elog.ts";
import type { Connection } from "./launch.ts";
import { type PMState, Shutdown, type ShutdownLevel } from "./pmstate.ts";
import { encodeErrorResponse, MessageReader } from "./pqcomm.ts";

/** PostgreSQL's `CAC_state`: whether, and why not, a connection is accepted. */
export type CACState =
  | "CAC_OK"
  | "CAC_STARTUP"
  | "CAC_NOTCONSISTENT"
  | "CAC_SHUTDOWN"
  | "CAC_RECOVERY"
  | "CAC_TOOMANY";

export interface Rejection {
  readonly code: string;
  readonly message: string;
  readonly detail?: string;
}

/** The FATAL a rejected client reads, as backend_startup.c words it. */
export function rejectionFor(cac: Exclude<CACState, "CAC_OK">): Rejection {
  switch (cac) {
    case "CAC_STARTUP":
      return { code: ERRCODE.CANNOT_CONNECT_NOW, message: "the database system is starting up" };
    case "CAC_NOTCONSISTENT":
      return {
        code: ERRCODE.CANNOT_CONNECT_NOW,
        message: "the database system is not yet accepting connections",
        detail: "Consistent recovery state has not been yet reached.",
      };
    case "CAC_SHUTDOWN":
      return { code: ERRCODE.CANNOT_CONNECT_NOW, message: "the database system is shutting down" };
    case "CAC_RECOVERY":
      return {
        code: ERRCODE.CANNOT_CONNECT_NOW,
        message: "the database system is in recovery mode",
      };
    case "CAC_TOOMANY":
      return { code: ERRCODE.TOO_MANY_CONNECTIONS, message: "sorry, too many clients already" };
    default: {
      const never: never = cac;
      throw new TypeError(`Unknown CAC state: ${String(never)}`);
    }
  }
}

/**
 * Serves one rejected client to the end. Resolves when the connection is
 * closed; never rejects (a misbehaving client is just dropped). `abort` cuts
 * it short, as SIGTERM/SIGQUIT would a dead-end child.
 */
export async function serveDeadEnd(
  conn: Connection,
  rejection: Rejection,
  options: { timeoutMs: number; abort?: AbortSignal },
): Promise<void> {
  const closed = new Promise<void>((resolve) => {
    const reader = new MessageReader(conn);
    const prev = conn.onClose;
    conn.onClose = () => {
      prev?.();
      resolve();
    };
    if (options.abort?.aborted) {
      conn.destroy();
      return;
    }
    options.abort?.addEventListener("abort", () => conn.destroy(), { once: true });
    void (async () => {
      try {
        const packet = await reader.readStartupPacket({ timeoutMs: options.timeoutMs });
        // A cancel request, a bad packet or a timeout gets no answer: the
        // client either expects none or is not speaking the protocol.
        if (packet.type === "startup") {
          conn.write(encodeErrorResponse({ severity: "FATAL", ...rejection }));
          conn.end();
        } else {
          conn.destroy();
        }
      } catch {
        conn.destroy();
      }
    })();
  });
  await closed;
}

/** The facts canAcceptConnections looks at. */
export interface AdmissionState {
  readonly pmState: PMState;
  readonly shutdown: ShutdownLevel;
  readonly fatalError: boolean;
  readonly connsAllowed: boolean;
}

/**
 * PostgreSQL's canAcceptConnections, for a client backend. The slot check
 * (CAC_TOOMANY) comes after, when a backend slot is taken.
 */
export function canAcceptConnections(s: AdmissionState): CACState {
  if (s.pmState !== "PM_RUN") {
    if (s.shutdown > Shutdown.NoShutdown) return "CAC_SHUTDOWN";
    if (!s.fatalError && s.pmState === "PM_STARTUP") return "CAC_STARTUP";
    if (!s.fatalError && s.pmState === "PM_RECOVERY") return "CAC_NOTCONSISTENT";
    return "CAC_RECOVERY";
  }
  if (!s.connsAllowed) return "CAC_SHUTDOWN";
  return "CAC_OK";
}
