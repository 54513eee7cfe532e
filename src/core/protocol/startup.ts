/**
 * Startup-phase packets: StartupMessage, SSLRequest, GSSENCRequest and
 * CancelRequest, parsed as ProcessStartupPacket and ProcessCancelRequestPacket
 * (backend_startup.c, PostgreSQL 18) parse them, plus the protocol-version
 * negotiation that decides whether a NegotiateProtocolVersion must be sent.
 *
 * pgts speaks protocol 3.0 (PG_PROTOCOL_LATEST). A client asking for a later
 * 3.x minor, or sending `_pq_.` options the caller does not know, is told so
 * with NegotiateProtocolVersion and the session continues at 3.0, as in
 * PostgreSQL. Answering SSLRequest/GSSENCRequest ('N') and acting on a cancel
 * are the caller's business.
 */

import { ERRCODE, PgError } from "../elog.ts";
import {
  BE,
  CANCEL_REQUEST_CODE,
  MAX_CANCEL_KEY_LENGTH,
  NEGOTIATE_GSS_CODE,
  NEGOTIATE_SSL_CODE,
  PG_PROTOCOL_EARLIEST,
  PG_PROTOCOL_LATEST,
  pgProtocol,
} from "./constants.ts";
import { CommError, protocolViolation } from "./errors.ts";
import { decodeUtf8 } from "./msgbuf.ts";
import type { MessageWriter } from "./writer.ts";

/** A StartupMessage, with the parameters ProcessStartupPacket separates out. */
export interface StartupMessage {
  kind: "startup";
  /** The version the client asked for, `major << 16 | minor`. */
  requestedVersion: number;
  /** The version the session runs at: min(requested, latest). */
  version: number;
  user: string;
  /** Defaults to the user name when absent or empty. */
  database: string;
  /** The `options` parameter (command-line switches), if sent. */
  options?: string;
  applicationName?: string;
  /** `replication`: false, true (physical walsender) or "database" (logical). */
  replication: boolean | "database";
  /** Every other parameter: GUC settings, in the order sent (application_name included). */
  gucs: [name: string, value: string][];
  /** `_pq_.` protocol options the caller recognised, with their values. */
  protocolOptions: Record<string, string>;
  /**
   * Set when a NegotiateProtocolVersion must be sent before anything else:
   * the version offered and the `_pq_.` options not recognised.
   */
  negotiate: { version: number; unrecognizedOptions: string[] } | null;
}

export type StartupPacket =
  | StartupMessage
  | { kind: "ssl" }
  | { kind: "gssenc" }
  /** A cancel: the target's PID and the key (4 bytes before protocol 3.2, up to 256 after). */
  | { kind: "cancel"; pid: number; key: Uint8Array };

export interface ParseStartupOptions {
  /** Highest protocol version offered; default PG_PROTOCOL_LATEST (3.0). */
  latestVersion?: number;
  /** `_pq_.` option names the caller understands; others are reported as unrecognised. */
  knownProtocolOptions?: readonly string[];
}

/**
 * Parses the body returned by `MessageReader.readStartupPacket()`. Throws
 * CommError for a malformed cancel (logged only), and FATAL PgErrors for an
 * unsupported major version (0A000), a bad layout (08P01), a bad
 * `replication` value (22023) or a missing user name (28000).
 */
export function parseStartupPacket(
  body: Uint8Array,
  options: ParseStartupOptions = {},
): StartupPacket {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const proto = view.getUint32(0);
  if (proto === CANCEL_REQUEST_CODE) {
    if (body.length < 8) throw new CommError("invalid length of cancel request packet");
    const keyLen = body.length - 8;
    if (keyLen === 0 || keyLen > MAX_CANCEL_KEY_LENGTH) {
      throw new CommError("invalid length of cancel key in cancel request packet");
    }
    return { kind: "cancel", pid: view.getInt32(4), key: body.subarray(8) };
  }
  if (proto === NEGOTIATE_SSL_CODE) return { kind: "ssl" };
  if (proto === NEGOTIATE_GSS_CODE) return { kind: "gssenc" };

  const latest = options.latestVersion ?? PG_PROTOCOL_LATEST;
  const major = proto >>> 16;
  const minor = proto & 0xffff;
  if (major < PG_PROTOCOL_EARLIEST >>> 16 || major > latest >>> 16) {
    throw new PgError(
      ERRCODE.FEATURE_NOT_SUPPORTED,
      `unsupported frontend protocol ${major}.${minor}: server supports ${
        PG_PROTOCOL_EARLIEST >>> 16
      }.0 to ${latest >>> 16}.${latest & 0xffff}`,
      { severity: "FATAL" },
    );
  }

  const known = new Set(options.knownProtocolOptions ?? []);
  const msg: StartupMessage = {
    kind: "startup",
    requestedVersion: proto,
    version: Math.min(proto, latest),
    user: "",
    database: "",
    replication: false,
    gucs: [],
    protocolOptions: {},
    negotiate: null,
  };
  const unrecognized: string[] = [];
  let offset = 4;
  const len = body.length;
  while (offset < len) {
    if (body[offset] === 0) break; // the packet terminator
    const nameEnd = body.indexOf(0, offset);
    if (nameEnd < 0 || nameEnd + 1 >= len) {
      offset = len; // name or value runs off the end: complain below
      break;
    }
    const valEnd = body.indexOf(0, nameEnd + 1);
    if (valEnd < 0) {
      offset = len;
      break;
    }
    const name = decodeUtf8(body.subarray(offset, nameEnd));
    const value = decodeUtf8(body.subarray(nameEnd + 1, valEnd));
    offset = valEnd + 1;
    if (name === "database") msg.database = value;
    else if (name === "user") msg.user = value;
    else if (name === "options") msg.options = value;
    else if (name === "replication") msg.replication = parseReplication(value);
    else if (name.startsWith("_pq_.")) {
      if (known.has(name)) msg.protocolOptions[name] = value;
      else unrecognized.push(name);
    } else {
      msg.gucs.push([name, value]);
      if (name === "application_name") msg.applicationName = value;
    }
  }
  if (offset !== len - 1) {
    throw protocolViolation("invalid startup packet layout: expected terminator as last byte");
  }
  if (minor > (latest & 0xffff) || unrecognized.length > 0) {
    msg.negotiate = { version: msg.version, unrecognizedOptions: unrecognized };
  }
  if (msg.user === "") {
    throw new PgError(
      ERRCODE.INVALID_AUTHORIZATION_SPECIFICATION,
      "no PostgreSQL user name specified in startup packet",
      { severity: "FATAL" },
    );
  }
  if (msg.database === "") msg.database = msg.user;
  return msg;
}

/** The replication parameter: "database", or a boolean as parse_bool reads one. */
function parseReplication(value: string): boolean | "database" {
  if (value === "database") return "database";
  const b = parseBool(value);
  if (b === null) {
    throw new PgError(
      ERRCODE.INVALID_PARAMETER_VALUE,
      `invalid value for parameter "replication": "${value}"`,
      { severity: "FATAL", hint: 'Valid values are: "false", 0, "true", 1, "database".' },
    );
  }
  return b;
}

/** PostgreSQL's parse_bool: any unambiguous prefix of true/false/yes/no, on/off, 1/0. */
export function parseBool(value: string): boolean | null {
  const v = value.toLowerCase();
  if (v.length === 0) return null;
  const prefixOf = (word: string, min = 1) => v.length >= min && word.startsWith(v);
  if (prefixOf("true") || prefixOf("yes") || prefixOf("on", 2) || v === "1") return true;
  if (prefixOf("false") || prefixOf("no") || prefixOf("off", 2) || v === "0") return false;
  return null;
}

/** Writes a NegotiateProtocolVersion ('v'): newest minor supported, unrecognised options. */
export function writeNegotiateProtocolVersion(
  w: MessageWriter,
  version: number,
  unrecognizedOptions: readonly string[] = [],
): void {
  w.begin(BE.NegotiateProtocolVersion).uint32(version).int32(unrecognizedOptions.length);
  for (const name of unrecognizedOptions) w.string(name);
  w.end();
}

/** Writes the startup-phase packets a client sends (for tests and proxies). */
export function writeStartupMessage(
  w: MessageWriter,
  params: Record<string, string>,
  options: { version?: number } = {},
): void {
  w.beginUntyped().uint32(options.version ?? pgProtocol(3, 0));
  for (const [k, v] of Object.entries(params)) w.string(k).string(v);
  w.byte(0).end();
}

export function writeSSLRequest(w: MessageWriter): void {
  w.beginUntyped().uint32(NEGOTIATE_SSL_CODE).end();
}

export function writeGSSENCRequest(w: MessageWriter): void {
  w.beginUntyped().uint32(NEGOTIATE_GSS_CODE).end();
}

/** CancelRequest: `key` is a 4-byte int32 (protocol 3.0) or raw bytes (3.2). */
export function writeCancelRequest(w: MessageWriter, pid: number, key: number | Uint8Array): void {
  w.beginUntyped().uint32(CANCEL_REQUEST_CODE).int32(pid);
  if (typeof key === "number") w.int32(key);
  else w.bytes(key);
  w.end();
}
