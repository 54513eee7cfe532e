/**
 * How a backend answers the postmaster's stop signals (PostgreSQL's die()
 * and quickdie() in tcop/postgres.c), for any backend main to install.
 *
 * - SIGTERM (fast shutdown, pg_terminate_backend): the client gets FATAL
 *   57P01 "terminating connection due to administrator command", the
 *   backend rolls back (the caller's `onTerminate`) and exits 1, a normal
 *   exit for a backend.
 * - SIGQUIT (crash of another process, or immediate shutdown): shared state
 *   may be corrupt, so nothing is cleaned up. As PostgreSQL does, the client
 *   gets a WARNING (a NoticeResponse, not an ErrorResponse: the backend
 *   cannot be sure an orderly FATAL would still work) with the reason the
 *   postmaster gave, then the connection is dropped and the backend exits 2.
 * - SIGQUIT while the client is still in authentication: the connection is
 *   closed with nothing sent, as quickdie() does while ClientAuthInProgress
 *   (a client there may get ErrorResponse but not NoticeResponse: libpq
 *   would report "expected authentication request from server, but
 *   received N").
 *
 * The exit code is delivered through `exitCode`, which the backend main
 * races against its own loop; this module never ends a child itself.
 */

import { ERRCODE, PgError } from "../elog.ts";
import type { ChildEnv, Connection } from "../adapter.ts";
import type { PostmasterLink } from "./pmsignal.ts";
import { encodeErrorResponse, encodeNoticeResponse } from "../protocol/backend.ts";

/** The WARNING quickdie sends for each quit reason (null: SIGQUIT from outside). */
export function quickdieReport(reason: "crash" | "stop" | null): PgError {
  switch (reason) {
    case "crash":
      return new PgError(
        ERRCODE.CRASH_SHUTDOWN,
        "terminating connection because of crash of another server process",
        {
          severity: "WARNING",
          detail:
            "The postmaster has commanded this server process to roll back the current transaction and exit, because another server process exited abnormally and possibly corrupted shared memory.",
          hint:
            "In a moment you should be able to reconnect to the database and repeat your command.",
        },
      );
    case "stop":
      return new PgError(
        ERRCODE.ADMIN_SHUTDOWN,
        "terminating connection due to immediate shutdown command",
        { severity: "WARNING" },
      );
    case null:
      return new PgError(
        ERRCODE.ADMIN_SHUTDOWN,
        "terminating connection because of unexpected SIGQUIT signal",
        { severity: "WARNING" },
      );
    default: {
      const never: never = reason;
      throw new TypeError(`Unknown quit reason: ${String(never)}`);
    }
  }
}

/** The FATAL die() leads to. */
function adminShutdownFatal(): PgError {
  return new PgError(
    ERRCODE.ADMIN_SHUTDOWN,
    "terminating connection due to administrator command",
    { severity: "FATAL" },
  );
}

export interface BackendSignalHandling {
  /** Resolves with the exit code once a stop signal has been handled. */
  readonly exitCode: Promise<number>;
}

/**
 * Installs SIGTERM and SIGQUIT handling for a backend serving `env.client`.
 * `onTerminate` runs before the FATAL is sent (abort the transaction, release
 * the engine session); it is not run on SIGQUIT.
 */
export function installBackendSignalHandlers(
  env: ChildEnv,
  link: PostmasterLink,
  options: {
    onTerminate?: () => void | Promise<void>;
    /** The connection to the client now (a TLS session's once SSL is in use); default `env.client`. */
    client?: () => Connection | null;
    /** True while the client has not had AuthenticationOk (PostgreSQL's ClientAuthInProgress). */
    authInProgress?: () => boolean;
  } = {},
): BackendSignalHandling {
  const clientOf = options.client ?? (() => env.client);
  let resolveExit: (code: number) => void = () => {};
  const exitCode = new Promise<number>((resolve) => (resolveExit = resolve));
  let stopping = false;

  env.onSignal("SIGTERM", () => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      try {
        await options.onTerminate?.();
      } finally {
        const client = clientOf();
        if (client !== null) {
          client.write(encodeErrorResponse(adminShutdownFatal()));
          client.end();
        }
        resolveExit(1);
      }
    })();
  });

  // A SIGQUIT overrides a SIGTERM being handled: the postmaster has given up
  // on an orderly exit.
  env.onSignal("SIGQUIT", () => {
    void (async () => {
      const reason = await link.quitReason();
      const client = clientOf();
      if (client !== null) {
        if (options.authInProgress?.() !== true) {
          client.write(encodeNoticeResponse(quickdieReport(reason)));
        }
        client.end();
      }
      resolveExit(2);
    })();
  });

  return { exitCode };
}
