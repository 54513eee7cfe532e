/**
 * Frontend messages: decoders for what a backend receives (Query, Parse,
 * Bind, Describe, Execute, Close, CopyFail, password and SASL messages) and
 * encoders for all of them, used by tests and by code that rewrites a
 * client's statement names before relaying.
 *
 * Decoders read as exec_*_message in postgres.c and recv_password_packet /
 * CheckSASLAuth read: pqformat.c's checks and texts, ending with
 * "invalid message format" when bytes are left over. Strings are decoded as
 * UTF-8; parameter values and CopyData stay as subarrays of the body.
 */

import { FE } from "./constants.ts";
import { protocolViolation } from "./errors.ts";
import { MessageBuffer } from "./msgbuf.ts";
import type { MessageWriter } from "./writer.ts";

export interface ParseMessage {
  name: string;
  query: string;
  /** Parameter type OIDs; 0 = unspecified. */
  paramTypes: number[];
}

export interface BindMessage {
  portal: string;
  statement: string;
  /** 0 text, 1 binary: none (all text), one (applies to all) or one per parameter. */
  paramFormats: number[];
  /** Raw parameter values; null is SQL NULL. Subarrays of the message body. */
  params: (Uint8Array | null)[];
  /** Result column formats, with the same none/one/each convention. */
  resultFormats: number[];
}

export interface DescribeMessage {
  /** 'S' for a prepared statement, 'P' for a portal. */
  target: "S" | "P";
  name: string;
}

export type CloseMessage = DescribeMessage;

export interface ExecuteMessage {
  portal: string;
  /** 0 = no limit. */
  maxRows: number;
}

export interface SASLInitialResponse {
  mechanism: string;
  /** null when the client sent length -1 (no initial response). */
  data: Uint8Array | null;
}

/** Query ('Q'): the SQL text. */
export function parseQuery(body: Uint8Array): string {
  const buf = new MessageBuffer(body);
  const sql = buf.string();
  buf.end();
  return sql;
}

/** Parse ('P'). */
export function parseParse(body: Uint8Array): ParseMessage {
  const buf = new MessageBuffer(body);
  const name = buf.string();
  const query = buf.string();
  const n = buf.uint16();
  const paramTypes = new Array<number>(n);
  for (let i = 0; i < n; i++) paramTypes[i] = buf.uint32();
  buf.end();
  return { name, query, paramTypes };
}

/** Bind ('B'); checks the format count as exec_bind_message does. */
export function parseBind(body: Uint8Array): BindMessage {
  const buf = new MessageBuffer(body);
  const portal = buf.string();
  const statement = buf.string();
  const nFormats = buf.uint16();
  const paramFormats = new Array<number>(nFormats);
  for (let i = 0; i < nFormats; i++) paramFormats[i] = buf.int16();
  const nParams = buf.uint16();
  if (nFormats > 1 && nFormats !== nParams) {
    throw protocolViolation(
      `bind message has ${nFormats} parameter formats but ${nParams} parameters`,
      { severity: "ERROR" },
    );
  }
  const params = new Array<Uint8Array | null>(nParams);
  for (let i = 0; i < nParams; i++) {
    const len = buf.int32();
    params[i] = len === -1 ? null : buf.bytes(len);
  }
  const nResult = buf.uint16();
  const resultFormats = new Array<number>(nResult);
  for (let i = 0; i < nResult; i++) resultFormats[i] = buf.int16();
  buf.end();
  return { portal, statement, paramFormats, params, resultFormats };
}

function parseTargeted(body: Uint8Array, what: "DESCRIBE" | "CLOSE"): DescribeMessage {
  const buf = new MessageBuffer(body);
  const t = buf.byte();
  const name = buf.string();
  buf.end();
  if (t !== 0x53 && t !== 0x50) {
    throw protocolViolation(`invalid ${what} message subtype ${t}`, { severity: "ERROR" });
  }
  return { target: t === 0x53 ? "S" : "P", name };
}

/** Describe ('D'). */
export function parseDescribe(body: Uint8Array): DescribeMessage {
  return parseTargeted(body, "DESCRIBE");
}

/** Close ('C'). */
export function parseClose(body: Uint8Array): CloseMessage {
  return parseTargeted(body, "CLOSE");
}

/** Execute ('E'); a non-positive row count means no limit. */
export function parseExecute(body: Uint8Array): ExecuteMessage {
  const buf = new MessageBuffer(body);
  const portal = buf.string();
  const maxRows = buf.int32();
  buf.end();
  return { portal, maxRows: maxRows > 0 ? maxRows : 0 };
}

/** CopyFail ('f'): the client's reason. */
export function parseCopyFail(body: Uint8Array): string {
  const buf = new MessageBuffer(body);
  const reason = buf.string();
  buf.end();
  return reason;
}

/**
 * PasswordMessage ('p') for password and md5: the NUL-terminated text.
 * Fails as recv_password_packet does on a bad size or an empty password.
 */
export function parsePasswordMessage(body: Uint8Array): string {
  if (body.indexOf(0) !== body.length - 1) {
    throw protocolViolation("invalid password packet size");
  }
  return new MessageBuffer(body).string();
}

/** SASLInitialResponse ('p'): mechanism name and optional initial data. */
export function parseSASLInitialResponse(body: Uint8Array): SASLInitialResponse {
  const buf = new MessageBuffer(body);
  const mechanism = buf.string();
  const len = buf.int32();
  const data = len === -1 ? null : buf.bytes(len);
  buf.end();
  return { mechanism, data };
}

/** SASLResponse ('p'): the whole body is mechanism data. */
export function parseSASLResponse(body: Uint8Array): Uint8Array {
  return body;
}

// Encoders -----------------------------------------------------------------

export function writeQuery(w: MessageWriter, sql: string): void {
  w.begin(FE.Query).string(sql).end();
}

export function writeParse(w: MessageWriter, msg: ParseMessage): void {
  w.begin(FE.Parse).string(msg.name).string(msg.query).int16(msg.paramTypes.length);
  for (const oid of msg.paramTypes) w.uint32(oid);
  w.end();
}

export function writeBind(w: MessageWriter, msg: BindMessage): void {
  w.begin(FE.Bind).string(msg.portal).string(msg.statement).int16(msg.paramFormats.length);
  for (const f of msg.paramFormats) w.int16(f);
  w.int16(msg.params.length);
  for (const p of msg.params) w.value(p);
  w.int16(msg.resultFormats.length);
  for (const f of msg.resultFormats) w.int16(f);
  w.end();
}

export function writeDescribe(w: MessageWriter, msg: DescribeMessage): void {
  w.begin(FE.Describe).byte(msg.target.charCodeAt(0)).string(msg.name).end();
}

export function writeClose(w: MessageWriter, msg: CloseMessage): void {
  w.begin(FE.Close).byte(msg.target.charCodeAt(0)).string(msg.name).end();
}

export function writeExecute(w: MessageWriter, msg: ExecuteMessage): void {
  w.begin(FE.Execute).string(msg.portal).int32(msg.maxRows).end();
}

export function writeSync(w: MessageWriter): void {
  w.begin(FE.Sync).end();
}

export function writeFlush(w: MessageWriter): void {
  w.begin(FE.Flush).end();
}

export function writeTerminate(w: MessageWriter): void {
  w.begin(FE.Terminate).end();
}

export function writeCopyData(w: MessageWriter, data: Uint8Array): void {
  w.begin(FE.CopyData).bytes(data).end();
}

export function writeCopyDone(w: MessageWriter): void {
  w.begin(FE.CopyDone).end();
}

export function writeCopyFail(w: MessageWriter, reason: string): void {
  w.begin(FE.CopyFail).string(reason).end();
}

/** FunctionCall ('F') with an opaque body: pgts only recognises the type. */
export function writeFunctionCall(w: MessageWriter, body: Uint8Array): void {
  w.begin(FE.FunctionCall).bytes(body).end();
}

export function writePasswordMessage(w: MessageWriter, password: string): void {
  w.begin(FE.PasswordMessage).string(password).end();
}

export function writeSASLInitialResponse(w: MessageWriter, msg: SASLInitialResponse): void {
  w.begin(FE.PasswordMessage).string(msg.mechanism);
  if (msg.data === null) w.int32(-1);
  else w.int32(msg.data.length).bytes(msg.data);
  w.end();
}

export function writeSASLResponse(w: MessageWriter, data: Uint8Array): void {
  w.begin(FE.PasswordMessage).bytes(data).end();
}
