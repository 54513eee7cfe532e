/**
 * `MessageBuffer`: a cursor over one message body, the counterpart of
 * PostgreSQL's pqformat.c `pq_getmsg*` family. Every read checks bounds and
 * fails with PostgreSQL's 08P01 texts ("no data left in message",
 * "insufficient data left in message", "invalid string in message",
 * "invalid message format").
 *
 * It never copies: `bytes()` returns a subarray of the body, so a result lives
 * as long as the body does (for a backend, the MessageContext it came from).
 */

import { messageFormatError } from "./errors.ts";

const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

export class MessageBuffer {
  readonly data: Uint8Array;
  #view: DataView;
  #cursor = 0;

  constructor(data: Uint8Array) {
    this.data = data;
    this.#view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  get cursor(): number {
    return this.#cursor;
  }

  /** Bytes not yet read. */
  get remaining(): number {
    return this.data.length - this.#cursor;
  }

  /** pq_getmsgbyte. */
  byte(): number {
    if (this.#cursor >= this.data.length) throw messageFormatError("no data left in message");
    return this.data[this.#cursor++] as number;
  }

  #need(n: number): void {
    if (n < 0 || n > this.data.length - this.#cursor) {
      throw messageFormatError("insufficient data left in message");
    }
  }

  /** Signed 16-bit integer, network order. */
  int16(): number {
    this.#need(2);
    const v = this.#view.getInt16(this.#cursor);
    this.#cursor += 2;
    return v;
  }

  /** Unsigned 16-bit integer, network order. */
  uint16(): number {
    this.#need(2);
    const v = this.#view.getUint16(this.#cursor);
    this.#cursor += 2;
    return v;
  }

  /** Signed 32-bit integer, network order. */
  int32(): number {
    this.#need(4);
    const v = this.#view.getInt32(this.#cursor);
    this.#cursor += 4;
    return v;
  }

  /** Unsigned 32-bit integer (an OID, a protocol version), network order. */
  uint32(): number {
    this.#need(4);
    const v = this.#view.getUint32(this.#cursor);
    this.#cursor += 4;
    return v;
  }

  /** pq_getmsgbytes: `n` raw bytes, as a subarray of the body. */
  bytes(n: number): Uint8Array {
    this.#need(n);
    const v = this.data.subarray(this.#cursor, this.#cursor + n);
    this.#cursor += n;
    return v;
  }

  /** Everything left, as a subarray. */
  rest(): Uint8Array {
    const v = this.data.subarray(this.#cursor);
    this.#cursor = this.data.length;
    return v;
  }

  /** pq_getmsgrawstring: the bytes of a NUL-terminated string, without the NUL. */
  rawString(): Uint8Array {
    const end = this.data.indexOf(0, this.#cursor);
    if (end < 0) throw messageFormatError("invalid string in message");
    const v = this.data.subarray(this.#cursor, end);
    this.#cursor = end + 1;
    return v;
  }

  /** pq_getmsgstring: a NUL-terminated string decoded as UTF-8. */
  string(): string {
    const raw = this.rawString();
    return raw.length === 0 ? "" : utf8.decode(raw);
  }

  /** pq_getmsgend: fails unless the whole body was consumed. */
  end(): void {
    if (this.#cursor !== this.data.length) throw messageFormatError("invalid message format");
  }
}

/** Decodes UTF-8 bytes (invalid sequences become U+FFFD). */
export function decodeUtf8(bytes: Uint8Array): string {
  return bytes.length === 0 ? "" : utf8.decode(bytes);
}

/** `parts` as one array, in order (`size`, their total length, when the caller knows it). */
export function concatBytes(parts: readonly Uint8Array[], size?: number): Uint8Array {
  let n = size ?? 0;
  if (size === undefined) { for (const p of parts) n += p.length; }
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
