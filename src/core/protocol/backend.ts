/**
 * Backend message encoders: each `writeX(w, ...)` appends one complete
 * message to a `MessageWriter`, so a backend can coalesce a whole response
 * (RowDescription, DataRows, CommandComplete, ReadyForQuery) into one write.
 *
 * ErrorResponse and NoticeResponse are built from a `PgError` with every
 * field PostgreSQL's send_message_to_frontend sends when it has a value.
 * Encoders never validate SQL semantics; they only lay out bytes.
 */

import type { PgError } from "../elog.ts";
import { AUTH_REQ, BE, type TransactionStatus } from "./constants.ts";
import { MessageWriter } from "./writer.ts";

/** Authentication* ('R'). */
export function writeAuthenticationOk(w: MessageWriter): void {
  w.begin(BE.AuthenticationRequest).int32(AUTH_REQ.OK).end();
}

export function writeAuthenticationCleartextPassword(w: MessageWriter): void {
  w.begin(BE.AuthenticationRequest).int32(AUTH_REQ.PASSWORD).end();
}

/** AuthenticationMD5Password with its 4-byte salt. */
export function writeAuthenticationMD5Password(w: MessageWriter, salt: Uint8Array): void {
  if (salt.length !== 4) throw new RangeError("MD5 salt must be 4 bytes");
  w.begin(BE.AuthenticationRequest).int32(AUTH_REQ.MD5).bytes(salt).end();
}

/** AuthenticationSASL: the mechanisms offered, in order of preference. */
export function writeAuthenticationSASL(w: MessageWriter, mechanisms: readonly string[]): void {
  w.begin(BE.AuthenticationRequest).int32(AUTH_REQ.SASL);
  for (const m of mechanisms) w.string(m);
  w.byte(0).end();
}

export function writeAuthenticationSASLContinue(w: MessageWriter, data: Uint8Array): void {
  w.begin(BE.AuthenticationRequest).int32(AUTH_REQ.SASL_CONT).bytes(data).end();
}

export function writeAuthenticationSASLFinal(w: MessageWriter, data: Uint8Array): void {
  w.begin(BE.AuthenticationRequest).int32(AUTH_REQ.SASL_FIN).bytes(data).end();
}

/** ParameterStatus ('S'): a GUC_REPORT setting's current value. */
export function writeParameterStatus(w: MessageWriter, name: string, value: string): void {
  w.begin(BE.ParameterStatus).string(name).string(value).end();
}

/** BackendKeyData ('K'): a 4-byte int32 key (protocol 3.0) or a longer byte key (3.2). */
export function writeBackendKeyData(w: MessageWriter, pid: number, key: number | Uint8Array): void {
  w.begin(BE.BackendKeyData).int32(pid);
  if (typeof key === "number") w.int32(key);
  else w.bytes(key);
  w.end();
}

export function writeReadyForQuery(w: MessageWriter, status: TransactionStatus): void {
  w.begin(BE.ReadyForQuery).byte(status.charCodeAt(0)).end();
}

/** Location fields PgError does not carry: PostgreSQL's F, L, R, p and q. */
export interface ErrorOrigin {
  file?: string;
  line?: number;
  routine?: string;
  internalPosition?: number;
  internalQuery?: string;
}

function writeNoticeFields(w: MessageWriter, err: PgError, origin: ErrorOrigin): void {
  const f = err.fields;
  const field = (code: string, v: string | number | undefined) => {
    if (v !== undefined) w.byte(code.charCodeAt(0)).string(String(v));
  };
  field("S", err.severity);
  field("V", err.severity);
  field("C", err.code);
  field("M", err.message);
  field("D", f.detail);
  field("H", f.hint);
  field("P", f.position);
  field("p", origin.internalPosition);
  field("q", origin.internalQuery);
  field("W", f.context);
  field("s", f.schema);
  field("t", f.table);
  field("c", f.column);
  field("d", f.dataType);
  field("n", f.constraint);
  field("F", origin.file);
  field("L", origin.line);
  field("R", origin.routine);
  w.byte(0);
}

/** ErrorResponse ('E') from a PgError. */
export function writeErrorResponse(
  w: MessageWriter,
  err: PgError,
  origin: ErrorOrigin = {},
): void {
  w.begin(BE.ErrorResponse);
  writeNoticeFields(w, err, origin);
  w.end();
}

/** NoticeResponse ('N') from a PgError of NOTICE, WARNING, INFO... severity. */
export function writeNoticeResponse(
  w: MessageWriter,
  notice: PgError,
  origin: ErrorOrigin = {},
): void {
  w.begin(BE.NoticeResponse);
  writeNoticeFields(w, notice, origin);
  w.end();
}

/**
 * One ErrorResponse as bytes, for a writer of a single message (a dead-end's
 * FATAL, a backend's goodbye on SIGTERM).
 */
export function encodeErrorResponse(err: PgError): Uint8Array {
  return MessageWriter.encode((w) => writeErrorResponse(w, err));
}

/** One NoticeResponse as bytes (quickdie's WARNING on SIGQUIT). */
export function encodeNoticeResponse(notice: PgError): Uint8Array {
  return MessageWriter.encode((w) => writeNoticeResponse(w, notice));
}

/**
 * PostgreSQL's report_fork_failure_to_client: when no child could be started
 * there is nobody to speak the protocol, so the postmaster writes a bare
 * 'E' and a NUL-terminated text, which libpq prints as it is.
 */
export function encodeForkFailure(reason: string): Uint8Array {
  const text = new TextEncoder().encode(
    `could not fork new process for connection: ${reason}\n\0`,
  );
  const out = new Uint8Array(1 + text.length);
  out[0] = BE.ErrorResponse;
  out.set(text, 1);
  return out;
}

/** CommandComplete ('C') with its tag ("SELECT 1", "INSERT 0 3"). */
export function writeCommandComplete(w: MessageWriter, tag: string): void {
  w.begin(BE.CommandComplete).string(tag).end();
}

/** One column of a RowDescription. Omitted numbers default as for a computed column. */
export interface FieldDescription {
  name: string;
  /** Table OID, 0 when not a table column. */
  tableOid?: number;
  /** Attribute number, 0 when not a table column. */
  columnAttr?: number;
  typeOid: number;
  /** pg_type.typlen; -1 for variable width. */
  typeSize?: number;
  typeModifier?: number;
  /** 0 text, 1 binary. */
  format?: number;
}

export function writeRowDescription(w: MessageWriter, fields: readonly FieldDescription[]): void {
  w.begin(BE.RowDescription).int16(fields.length);
  for (const f of fields) {
    w.string(f.name).uint32(f.tableOid ?? 0).int16(f.columnAttr ?? 0).uint32(f.typeOid)
      .int16(f.typeSize ?? -1).int32(f.typeModifier ?? -1).int16(f.format ?? 0);
  }
  w.end();
}

/** DataRow ('D'): strings are sent as UTF-8 text, null as SQL NULL. */
export function writeDataRow(
  w: MessageWriter,
  values: readonly (Uint8Array | string | null)[],
): void {
  w.begin(BE.DataRow).int16(values.length);
  for (const v of values) w.value(v);
  w.end();
}

export function writeEmptyQueryResponse(w: MessageWriter): void {
  w.begin(BE.EmptyQueryResponse).end();
}

export function writeParseComplete(w: MessageWriter): void {
  w.begin(BE.ParseComplete).end();
}

export function writeBindComplete(w: MessageWriter): void {
  w.begin(BE.BindComplete).end();
}

export function writeCloseComplete(w: MessageWriter): void {
  w.begin(BE.CloseComplete).end();
}

export function writeNoData(w: MessageWriter): void {
  w.begin(BE.NoData).end();
}

export function writePortalSuspended(w: MessageWriter): void {
  w.begin(BE.PortalSuspended).end();
}

/** ParameterDescription ('t'): the parameter type OIDs of a prepared statement. */
export function writeParameterDescription(w: MessageWriter, typeOids: readonly number[]): void {
  w.begin(BE.ParameterDescription).int16(typeOids.length);
  for (const oid of typeOids) w.uint32(oid);
  w.end();
}

/** NotificationResponse ('A'): LISTEN/NOTIFY delivery. */
export function writeNotificationResponse(
  w: MessageWriter,
  notification: { pid: number; channel: string; payload?: string },
): void {
  w.begin(BE.NotificationResponse).int32(notification.pid).string(notification.channel)
    .string(notification.payload ?? "").end();
}
