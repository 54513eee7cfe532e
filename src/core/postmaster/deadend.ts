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

import { ERRCODE, PgError } from "../elog.ts";
import type { Connection } from "../adapter.ts";
import { type PMState, Shutdown, type ShutdownLevel } from "./pmstate.ts";
import { ENCRYPTION_ACCEPTED } from "../protocol/constants.ts";
import { encodeErrorResponse } from "../protocol/backend.ts";
import { ConnectionReader } from "../protocol/connreader.ts";
import { PG_ALPN_PROTOCOL, type SslServer, TLS_HANDSHAKE_BYTE } from "../backend/secure.ts";

/** PostgreSQL's `CAC_state`: whether, and why not, a connection is accepted. */
export type CACState =
  | "CAC_OK"
  | "CAC_STARTUP"
  | "CAC_NOTCONSISTENT"
  | "CAC_SHUTDOWN"
  | "CAC_RECOVERY"
  | "CAC_TOOMANY";

/**
 * The FATAL a rejected client reads, as backend_startup.c words it (a
 * dead-end, an HTTP run turned away, a backend that cannot reach the engine
 * during crash recovery). `detail` stands in for the state's own.
 */
export function rejectionFor(
  cac: Exclude<CACState, "CAC_OK">,
  options: { detail?: string } = {},
): PgError {
  const fatal = (code: string, message: string, detail?: string) => {
    const d = options.detail ?? detail;
    return new PgError(code, message, {
      severity: "FATAL",
      ...(d === undefined ? {} : { detail: d }),
    });
  };
  switch (cac) {
    case "CAC_STARTUP":
      return fatal(ERRCODE.CANNOT_CONNECT_NOW, "the database system is starting up");
    case "CAC_NOTCONSISTENT":
      return fatal(
        ERRCODE.CANNOT_CONNECT_NOW,
        "the database system is not yet accepting connections",
        "Consistent recovery state has not been yet reached.",
      );
    case "CAC_SHUTDOWN":
      return fatal(ERRCODE.CANNOT_CONNECT_NOW, "the database system is shutting down");
    case "CAC_RECOVERY":
      return fatal(ERRCODE.CANNOT_CONNECT_NOW, "the database system is in recovery mode");
    case "CAC_TOOMANY":
      return fatal(ERRCODE.TOO_MANY_CONNECTIONS, "sorry, too many clients already");
    default: {
      const never: never = cac;
      throw new TypeError(`Unknown CAC state: ${String(never)}`);
    }
  }
}

/**
 * Serves one rejected client to the end. Resolves when the connection is
 * closed; never rejects (a misbehaving client is just dropped). `abort` cuts
 * it short, as SIGTERM/SIGQUIT would a dead-end child. With `ssl`, an
 * SSLRequest (or PostgreSQL 17's direct SSL) is served as a backend serves
 * it, and the FATAL goes out encrypted: a client that requires SSL reads the
 * FATAL rather than "server does not support SSL".
 */
export function serveDeadEnd(
  conn: Connection,
  rejection: PgError,
  options: { timeoutMs: number; abort?: AbortSignal; ssl?: SslServer | null },
): Promise<void> {
  return new Promise<void>((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve();
    };
    // authentication_timeout bounds the whole exchange, the handshake included.
    const timer = setTimeout(() => conn.destroy(), Math.max(1, options.timeoutMs));
    /** The connection's close, which the current reader or TLS session owns. */
    const watchClose = () => {
      const prev = conn.onClose;
      conn.onClose = () => {
        prev?.();
        finish();
      };
    };
    let reader = new ConnectionReader(conn);
    watchClose();
    if (options.abort?.aborted) {
      conn.destroy();
      return;
    }
    options.abort?.addEventListener("abort", () => conn.destroy(), { once: true });
    const ssl = options.ssl ?? null;
    void (async () => {
      let client: Connection = conn;
      const secure = async (early: Uint8Array) => {
        const session = await ssl!.accept(conn, early);
        // The TLS session ends when the raw connection does.
        watchClose();
        client = session.connection;
        reader = new ConnectionReader(client);
        return session;
      };
      try {
        if (ssl !== null && (await reader.firstByte()) === TLS_HANDSHAKE_BYTE) {
          const session = await secure(reader.detach());
          if (session.alpn !== PG_ALPN_PROTOCOL) throw new Error("direct SSL without ALPN");
        }
        let packet = await reader.readStartupPacket({ ssl: ssl !== null && client === conn });
        if (packet.type === "ssl") {
          conn.write(Uint8Array.of(ENCRYPTION_ACCEPTED));
          const early = reader.detach();
          if (early.length > 0) throw new Error("unencrypted data after SSL request");
          await secure(early);
          packet = await reader.readStartupPacket();
        }
        // A cancel request, a bad packet or a timeout gets no answer: the
        // client either expects none or is not speaking the protocol.
        if (packet.type === "startup") {
          client.write(encodeErrorResponse(rejection));
          client.end();
        } else {
          client.destroy();
          conn.destroy();
        }
      } catch {
        client.destroy();
        conn.destroy();
      }
    })();
  });
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
