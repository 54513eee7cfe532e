/**
 * The little protocol byte handling the PGlite engine needs on its hot path:
 * splitting framed frontend input, reading and writing C strings, building
 * the few frontend messages the engine sends on its own behalf (internal
 * queries, Sync, Close) and the backend messages it synthesises (errors,
 * ReadyForQuery, notifications). Generated backend messages go through
 * `src/core/protocol`'s writer; this file only holds what must be cheap.
 *
 * Never allocates for a message it does not change: callers pass subarrays
 * of the input through untouched.
 */

import type { PgError } from "../../core/elog.ts";
import {
  BE,
  concatBytes,
  FE,
  MessageWriter,
  PG_DIAG,
  type TransactionStatus,
  writeErrorResponse,
  writeNoticeResponse,
  writeReadyForQuery,
} from "../../core/protocol/mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One framed message inside a buffer: type byte at `start`, body `[start+5, end)`. */
export interface Frame {
  readonly type: number;
  readonly start: number;
  readonly end: number;
}

export function readInt32(buf: Uint8Array, at: number): number {
  return (buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!;
}

/**
 * Follows backend message boundaries across the chunks of one answer,
 * which may split a message anywhere: `feed` calls `each` with the type of
 * every message whose header (type and length) ends in the chunk.
 */
export class MessageBoundaries {
  readonly #each: (type: number) => void;
  /** Bytes of the current message's body still to skip. */
  #skip = 0;
  #header = new Uint8Array(5);
  #headerLength = 0;

  constructor(each: (type: number) => void) {
    this.#each = each;
  }

  feed(chunk: Uint8Array): void {
    let p = 0;
    while (p < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - p);
        p += n;
        this.#skip -= n;
        continue;
      }
      const h = this.#header;
      h[this.#headerLength++] = chunk[p++]!;
      if (this.#headerLength < 5) continue;
      this.#headerLength = 0;
      this.#skip = readInt32(h, 1) - 4;
      this.#each(h[0]!);
    }
  }
}

/**
 * Splits complete framed messages. Returns null when the input is not a
 * whole number of well-formed frames (the caller reports 08P01).
 */
export function splitFrames(buf: Uint8Array): Frame[] | null {
  const frames: Frame[] = [];
  let at = 0;
  while (at < buf.length) {
    if (buf.length - at < 5) return null;
    const len = readInt32(buf, at + 1);
    if (len < 4 || at + 1 + len > buf.length) return null;
    frames.push({ type: buf[at]!, start: at, end: at + 1 + len });
    at += 1 + len;
  }
  return frames;
}

/**
 * An input skipped up to its first Sync, as PostgreSQL skips a batch after
 * an error: null when it has no Sync (all of it is skipped); else what
 * follows that Sync (no frames when nothing does). The caller answers the
 * Sync.
 */
export function afterSync(
  input: Uint8Array,
  frames: readonly Frame[],
): { input: Uint8Array; frames: Frame[] } | null {
  const s = frames.findIndex((f) => f.type === FE.Sync);
  if (s < 0) return null;
  if (s + 1 === frames.length) return { input: input.subarray(input.length), frames: [] };
  const rest = input.subarray(frames[s + 1]!.start);
  return { input: rest, frames: splitFrames(rest)! };
}

/**
 * A C string of the client's, and the offset past its NUL. A client whose
 * client_encoding is not UTF8 (LATIN1, SJIS, …) sends bytes that are not
 * UTF-8: each such byte is read as a lone surrogate, U+DC80 to U+DCFF, so
 * that `cstring` gives the same bytes back when pgts rewrites a text (a
 * statement name, say) around them, and the engine converts them as the
 * client sent them.
 */
export function readCString(buf: Uint8Array, at: number): [string, number] {
  let end = at;
  while (end < buf.length && buf[end] !== 0) end++;
  const bytes = buf.subarray(at, end);
  try {
    return [strictDecoder.decode(bytes), end + 1];
  } catch {
    return [escapedText(bytes), end + 1];
  }
}

const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/** The UTF-8 sequences of `bytes` as text, each other byte as U+DC00 + byte. */
function escapedText(bytes: Uint8Array): string {
  let out = "";
  let i = 0;
  while (i < bytes.length) {
    const l = utf8SequenceAt(bytes, i);
    if (l > 0) {
      out += decoder.decode(bytes.subarray(i, i + l));
      i += l;
    } else out += String.fromCharCode(0xdc00 + bytes[i++]!);
  }
  return out;
}

/** The length of the well-formed UTF-8 sequence at `i`, or 0. */
function utf8SequenceAt(m: Uint8Array, i: number): number {
  const a = m[i]!;
  if (a < 0x80) return 1;
  const l = a >= 0xc2 && a <= 0xdf
    ? 2
    : a >= 0xe0 && a <= 0xef
    ? 3
    : a >= 0xf0 && a <= 0xf4
    ? 4
    : 0;
  if (l === 0 || i + l > m.length) return 0;
  const b = m[i + 1]!;
  const [lo, hi] = a === 0xe0
    ? [0xa0, 0xbf]
    : a === 0xed
    ? [0x80, 0x9f]
    : a === 0xf0
    ? [0x90, 0xbf]
    : a === 0xf4
    ? [0x80, 0x8f]
    : [0x80, 0xbf];
  if (b < lo || b > hi) return 0;
  for (let j = 2; j < l; j++) if ((m[i + j]! & 0xc0) !== 0x80) return 0;
  return l;
}

/** Lone surrogates U+DC80–U+DCFF: bytes readCString escaped. */
const ESCAPED_BYTES = /[\udc80-\udcff]+/u;

export function cstring(s: string): Uint8Array {
  const b = ESCAPED_BYTES.test(s) ? escapedBytes(s) : encoder.encode(s);
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

/** `s` as UTF-8, with readCString's escaped bytes given back as they came. */
function escapedBytes(s: string): Uint8Array {
  // split() with a group: the escaped runs are the odd pieces.
  const pieces = s.split(/([\udc80-\udcff]+)/u);
  return concat(
    pieces.map((piece, k) =>
      k % 2 === 1 ? Uint8Array.from(piece, (c) => c.charCodeAt(0) - 0xdc00) : encoder.encode(piece)
    ),
  );
}

/** Frames `type` + body parts into one message. */
export function message(type: number, ...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(5 + n);
  out[0] = type;
  new DataView(out.buffer).setInt32(1, 4 + n);
  let at = 5;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** `parts` as one array: the one part itself, uncopied, when there is one. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0]! : concatBytes(parts);
}

export const fe = {
  query: (sql: string) => message(FE.Query, cstring(sql)),
  sync: () => message(FE.Sync),
  /** Close ('C') of a statement ('S') or portal ('P'); closing a missing one is not an error. */
  close: (kind: "S" | "P", name: string) =>
    message(FE.Close, Uint8Array.of(kind.charCodeAt(0)), cstring(name)),
  execute: (portal: string) => message(FE.Execute, cstring(portal), new Uint8Array(4)),
  copyFail: (reason: string) => message(FE.CopyFail, cstring(reason)),
} as const;

export function errorResponse(err: PgError): Uint8Array {
  return MessageWriter.encode((w) => writeErrorResponse(w, err));
}

export function noticeResponse(notice: PgError): Uint8Array {
  return MessageWriter.encode((w) => writeNoticeResponse(w, notice));
}

export function readyForQuery(status: TransactionStatus): Uint8Array {
  return MessageWriter.encode((w) => writeReadyForQuery(w, status));
}

/** NotificationResponse body fields. */
export function parseNotification(
  body: Uint8Array,
): { pid: number; channel: string; payload: string } {
  const pid = readInt32(body, 0);
  const [channel, next] = readCString(body, 4);
  const [payload] = readCString(body, next);
  return { pid, channel, payload };
}

/** The same NotificationResponse with another sender pid (the notifying session's). */
export function withNotifierPid(msg: Uint8Array, pid: number): Uint8Array {
  const out = msg.slice();
  new DataView(out.buffer).setInt32(5, pid);
  return out;
}

/**
 * Rewrites the text fields of an ErrorResponse/NoticeResponse ('M', 'D', 'H')
 * through `edit`, and its position ('P') through `position`; returns the
 * message unchanged (same object) when nothing changed.
 */
export function editNoticeText(
  msg: Uint8Array,
  edit: (s: string) => string,
  position?: (p: number) => number,
): Uint8Array {
  const fields: Array<[number, string]> = [];
  let at = 5;
  let changed = false;
  while (at < msg.length && msg[at] !== 0) {
    const code = msg[at]!;
    const [value, next] = readCString(msg, at + 1);
    at = next;
    if (
      code === PG_DIAG.MESSAGE_PRIMARY || code === PG_DIAG.MESSAGE_DETAIL ||
      code === PG_DIAG.MESSAGE_HINT
    ) {
      const v = edit(value);
      if (v !== value) changed = true;
      fields.push([code, v]);
    } else if (code === PG_DIAG.STATEMENT_POSITION && position !== undefined) {
      const v = String(position(Number(value)));
      if (v !== value) changed = true;
      fields.push([code, v]);
    } else fields.push([code, value]);
  }
  if (!changed) return msg;
  const parts: Uint8Array[] = [];
  for (const [code, v] of fields) parts.push(Uint8Array.of(code), cstring(v));
  parts.push(Uint8Array.of(0));
  return message(msg[0]!, ...parts);
}

/** The SQLSTATE ('C' field) of an ErrorResponse. */
export function errorCode(msg: Uint8Array): string {
  return errorField(msg, PG_DIAG.SQLSTATE);
}

/** One field of an ErrorResponse or NoticeResponse ('C' SQLSTATE, 'R' routine, …), or "". */
export function errorField(msg: Uint8Array, field: number): string {
  let at = 5;
  while (at < msg.length && msg[at] !== 0) {
    const code = msg[at]!;
    const [value, next] = readCString(msg, at + 1);
    if (code === field) return value;
    at = next;
  }
  return "";
}

/** Text columns of the DataRows in a backend byte stream (internal queries). */
export function dataRows(buf: Uint8Array): Array<Array<string | null>> {
  return resultSets(buf).flat();
}

/**
 * The DataRows of a backend byte stream, one list per statement of a
 * simple-protocol Query carrying several (each ends in CommandComplete or
 * EmptyQueryResponse); rows after the last such end (an error) make one
 * more list.
 */
export function resultSets(buf: Uint8Array): Array<Array<Array<string | null>>> {
  const sets: Array<Array<Array<string | null>>> = [];
  let rows: Array<Array<string | null>> = [];
  let at = 0;
  while (at + 5 <= buf.length) {
    const len = readInt32(buf, at + 1);
    const type = buf[at];
    if (type === BE.DataRow) {
      const n = (buf[at + 5]! << 8) | buf[at + 6]!;
      let p = at + 7;
      const row: Array<string | null> = [];
      for (let i = 0; i < n; i++) {
        const l = readInt32(buf, p);
        p += 4;
        if (l < 0) row.push(null);
        else {
          row.push(decoder.decode(buf.subarray(p, p + l)));
          p += l;
        }
      }
      rows.push(row);
    } else if (type === BE.CommandComplete || type === BE.EmptyQueryResponse) {
      sets.push(rows);
      rows = [];
    }
    at += 1 + len;
  }
  if (rows.length > 0) sets.push(rows);
  return sets;
}

/** The first ErrorResponse in a backend byte stream: its SQLSTATE, message, detail and hint. */
export function firstError(
  buf: Uint8Array,
): { code: string; message: string; detail?: string; hint?: string } | null {
  let at = 0;
  while (at + 5 <= buf.length) {
    const len = readInt32(buf, at + 1);
    if (buf[at] === BE.ErrorResponse) {
      let f = at + 5;
      const error: { code: string; message: string; detail?: string; hint?: string } = {
        code: "",
        message: "",
      };
      while (f < at + 1 + len && buf[f] !== 0) {
        const k = buf[f]!;
        const [v, next] = readCString(buf, f + 1);
        if (k === PG_DIAG.SQLSTATE) error.code = v;
        else if (k === PG_DIAG.MESSAGE_PRIMARY) error.message = v;
        else if (k === PG_DIAG.MESSAGE_DETAIL) error.detail = v;
        else if (k === PG_DIAG.MESSAGE_HINT) error.hint = v;
        f = next;
      }
      return error;
    }
    at += 1 + len;
  }
  return null;
}

/** SQL string literal. */
export function quoteLiteral(s: string): string {
  // With a backslash, the E'' form (backslashes doubled), as PostgreSQL's
  // quote_literal writes it: the text then reads the same whatever
  // standard_conforming_strings the backend has when it parses it, and the
  // backend may carry a session's `off` while pgts's own SQL is parsed
  // (a value ending in \' closed the literal early there).
  return s.includes("\\")
    ? "E'" + s.replaceAll("\\", "\\\\").replaceAll("'", "''") + "'"
    : "'" + s.replaceAll("'", "''") + "'";
}

/** SQL identifier, always quoted. */
export function quoteIdent(s: string): string {
  return '"' + s.replaceAll('"', '""') + '"';
}

/** CopyData, CopyDone or CopyFail: what a client sends in COPY FROM STDIN. */
export function isCopyData(type: number): boolean {
  return type === FE.CopyData || type === FE.CopyDone || type === FE.CopyFail;
}
