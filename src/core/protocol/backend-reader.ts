/**
 * Reading the backend side of the protocol: `BackendMessageReader` frames a
 * server's byte stream (type byte + int32 length), and the decoders below
 * read the messages pgts must understand while relaying an engine's output:
 * ErrorResponse/NoticeResponse (into a PgError), ReadyForQuery (transaction
 * status), ParameterStatus, plus the ones a test client needs
 * (Authentication*, BackendKeyData, RowDescription, DataRow, CommandComplete,
 * NegotiateProtocolVersion, NotificationResponse).
 *
 * Framing never validates types: a relay passes unknown messages through.
 */

import { type ErrorFields, PgError, type Severity } from "../elog.ts";
import { type Allocator, ByteQueue } from "./bytequeue.ts";
import { PQ_LARGE_MESSAGE_LIMIT, type TransactionStatus } from "./constants.ts";
import { CommError, messageFormatError } from "./errors.ts";
import { decodeUtf8, MessageBuffer } from "./msgbuf.ts";
import type { Message } from "./reader.ts";
import type { ErrorOrigin, FieldDescription } from "./backend.ts";

export class BackendMessageReader {
  #queue = new ByteQueue();
  #allocate: Allocator;
  #max: number;

  constructor(options: { allocate?: Allocator; maxMessageSize?: number } = {}) {
    this.#allocate = options.allocate ?? ((n) => new Uint8Array(n));
    this.#max = options.maxMessageSize ?? PQ_LARGE_MESSAGE_LIMIT;
  }

  push(chunk: Uint8Array): void {
    this.#queue.push(chunk);
  }

  get buffered(): number {
    return this.#queue.size;
  }

  /** The next whole message, or null. A bad length word throws "invalid message length". */
  read(): Message | null {
    const q = this.#queue;
    if (q.size < 5) return null;
    const len = q.peekInt32(1);
    if (len < 4 || len > this.#max) throw new CommError("invalid message length");
    if (q.size < len + 1) return null;
    const type = q.peekByte(0);
    q.skip(5);
    return { type, body: q.take(len - 4, this.#allocate) };
  }
}

/** The fields of an ErrorResponse or NoticeResponse, by protocol letter, decoded. */
export interface NoticeFields extends ErrorOrigin, ErrorFields {
  severity: string;
  /** The non-localised severity ('V'), when the server sent it. */
  severityV?: string;
  code: string;
  message: string;
}

/** Decodes an ErrorResponse ('E') or NoticeResponse ('N') body. */
export function parseErrorResponse(body: Uint8Array): NoticeFields {
  const buf = new MessageBuffer(body);
  const out: NoticeFields = { severity: "", code: "", message: "" };
  for (;;) {
    const t = buf.byte();
    if (t === 0) break;
    const v = buf.string();
    switch (String.fromCharCode(t)) {
      case "S":
        out.severity = v;
        break;
      case "V":
        out.severityV = v;
        break;
      case "C":
        out.code = v;
        break;
      case "M":
        out.message = v;
        break;
      case "D":
        out.detail = v;
        break;
      case "H":
        out.hint = v;
        break;
      case "P":
        out.position = Number(v);
        break;
      case "p":
        out.internalPosition = Number(v);
        break;
      case "q":
        out.internalQuery = v;
        break;
      case "W":
        out.context = v;
        break;
      case "s":
        out.schema = v;
        break;
      case "t":
        out.table = v;
        break;
      case "c":
        out.column = v;
        break;
      case "d":
        out.dataType = v;
        break;
      case "n":
        out.constraint = v;
        break;
      case "F":
        out.file = v;
        break;
      case "L":
        out.line = Number(v);
        break;
      case "R":
        out.routine = v;
        break;
      default:
        break; // unknown fields are to be ignored, says the protocol
    }
  }
  buf.end();
  return out;
}

const SEVERITIES = new Set([
  "DEBUG5",
  "DEBUG4",
  "DEBUG3",
  "DEBUG2",
  "DEBUG1",
  "LOG",
  "INFO",
  "NOTICE",
  "WARNING",
  "ERROR",
  "FATAL",
  "PANIC",
]);

/** Turns decoded ErrorResponse fields back into a PgError (relaying an engine's error). */
export function pgErrorFromFields(f: NoticeFields): PgError {
  const sev = f.severityV ?? f.severity;
  const severity: Severity = SEVERITIES.has(sev) ? sev as Severity : "ERROR";
  const opt: ConstructorParameters<typeof PgError>[2] = { severity };
  if (f.detail !== undefined) opt.detail = f.detail;
  if (f.hint !== undefined) opt.hint = f.hint;
  if (f.position !== undefined) opt.position = f.position;
  if (f.context !== undefined) opt.context = f.context;
  if (f.schema !== undefined) opt.schema = f.schema;
  if (f.table !== undefined) opt.table = f.table;
  if (f.column !== undefined) opt.column = f.column;
  if (f.dataType !== undefined) opt.dataType = f.dataType;
  if (f.constraint !== undefined) opt.constraint = f.constraint;
  return new PgError(f.code, f.message, opt);
}

/** ReadyForQuery ('Z'): the transaction status byte. */
export function parseReadyForQuery(body: Uint8Array): TransactionStatus {
  const buf = new MessageBuffer(body);
  const s = String.fromCharCode(buf.byte());
  buf.end();
  if (s !== "I" && s !== "T" && s !== "E") throw messageFormatError("invalid message format");
  return s;
}

/** ParameterStatus ('S'). */
export function parseParameterStatus(body: Uint8Array): { name: string; value: string } {
  const buf = new MessageBuffer(body);
  const name = buf.string();
  const value = buf.string();
  buf.end();
  return { name, value };
}

export type AuthenticationRequest =
  | { code: 0 | 3 }
  | { code: 5; salt: Uint8Array }
  | { code: 10; mechanisms: string[] }
  | { code: 11 | 12; data: Uint8Array }
  | { code: number; data: Uint8Array };

/** Authentication* ('R'): the request code and its payload. */
export function parseAuthenticationRequest(body: Uint8Array): AuthenticationRequest {
  const buf = new MessageBuffer(body);
  const code = buf.int32();
  switch (code) {
    case 0:
    case 3:
      buf.end();
      return { code };
    case 5:
      return { code, salt: buf.bytes(4) };
    case 10: {
      const mechanisms: string[] = [];
      for (let m = buf.string(); m !== ""; m = buf.string()) mechanisms.push(m);
      return { code, mechanisms };
    }
    default:
      return { code, data: buf.rest() };
  }
}

/** BackendKeyData ('K'): PID and the key bytes (4 in protocol 3.0). */
export function parseBackendKeyData(body: Uint8Array): { pid: number; key: Uint8Array } {
  const buf = new MessageBuffer(body);
  return { pid: buf.int32(), key: buf.rest() };
}

/** CommandComplete ('C'): the command tag. */
export function parseCommandComplete(body: Uint8Array): string {
  return new MessageBuffer(body).string();
}

export function parseRowDescription(body: Uint8Array): Required<FieldDescription>[] {
  const buf = new MessageBuffer(body);
  const n = buf.int16();
  const out: Required<FieldDescription>[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      name: buf.string(),
      tableOid: buf.uint32(),
      columnAttr: buf.int16(),
      typeOid: buf.uint32(),
      typeSize: buf.int16(),
      typeModifier: buf.int32(),
      format: buf.int16(),
    });
  }
  buf.end();
  return out;
}

/** DataRow ('D'): raw column values (subarrays of the body), null for NULL. */
export function parseDataRow(body: Uint8Array): (Uint8Array | null)[] {
  const buf = new MessageBuffer(body);
  const n = buf.int16();
  const out = new Array<Uint8Array | null>(n);
  for (let i = 0; i < n; i++) {
    const len = buf.int32();
    out[i] = len === -1 ? null : buf.bytes(len);
  }
  buf.end();
  return out;
}

/** DataRow decoded as text columns. */
export function parseDataRowText(body: Uint8Array): (string | null)[] {
  return parseDataRow(body).map((v) => v === null ? null : decodeUtf8(v));
}

export function parseNegotiateProtocolVersion(
  body: Uint8Array,
): { version: number; unrecognizedOptions: string[] } {
  const buf = new MessageBuffer(body);
  const version = buf.uint32();
  const n = buf.int32();
  const unrecognizedOptions: string[] = [];
  for (let i = 0; i < n; i++) unrecognizedOptions.push(buf.string());
  buf.end();
  return { version, unrecognizedOptions };
}

export function parseNotificationResponse(
  body: Uint8Array,
): { pid: number; channel: string; payload: string } {
  const buf = new MessageBuffer(body);
  const pid = buf.int32();
  const channel = buf.string();
  const payload = buf.string();
  buf.end();
  return { pid, channel, payload };
}
