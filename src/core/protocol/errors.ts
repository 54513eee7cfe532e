/**
 * The errors the protocol layer raises, with PostgreSQL's texts and SQLSTATEs.
 *
 * PostgreSQL reports some framing failures with COMMERROR: they go to the
 * server log only and the connection is closed without a word to the client,
 * because the message boundaries are lost and anything sent could be read as
 * garbage. `CommError` marks those; every other `PgError` from this layer is
 * FATAL and meant to reach the client as an ErrorResponse before closing.
 */

import { ERRCODE, PgError, type Severity } from "../elog.ts";

/**
 * A PgError that PostgreSQL logs with COMMERROR: log it, close the socket,
 * send nothing.
 */
export class CommError extends PgError {
  /** Always false: the client is not told (the stream is out of sync). */
  readonly reportToClient = false;

  constructor(message: string) {
    super(ERRCODE.PROTOCOL_VIOLATION, message, { severity: "LOG" });
  }
}

/** True when `e` must only be logged, never sent (PostgreSQL's COMMERROR). */
export function isCommError(e: unknown): e is CommError {
  return e instanceof CommError;
}

/** An 08P01 protocol_violation, FATAL unless told otherwise. */
export function protocolViolation(
  message: string,
  options: { detail?: string; severity?: Severity } = {},
): PgError {
  return new PgError(ERRCODE.PROTOCOL_VIOLATION, message, { severity: "FATAL", ...options });
}

/**
 * A 08P01 ERROR from reading inside a message body (pqformat.c). The caller
 * decides whether it is FATAL (during startup) or an ordinary ERROR.
 */
export function messageFormatError(message: string): PgError {
  return new PgError(ERRCODE.PROTOCOL_VIOLATION, message);
}
