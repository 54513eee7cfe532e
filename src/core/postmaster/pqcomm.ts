/**
 * The least of the frontend/backend protocol the postmaster needs on its own
 * (PostgreSQL's pqcomm.c and the start of backend_startup.c): split a
 * connection's bytes into the startup packet and typed messages, answer
 * GSSENCRequest (and SSLRequest, unless the caller runs SSL) with 'N', and
 * encode ErrorResponse and
 * NoticeResponse. The full protocol lives in src/core/protocol; this module
 * stays small so the postmaster can reject a client (a dead-end backend) and
 * a backend can say goodbye on SIGTERM/SIGQUIT without depending on it.
 *
 * It owns the connection's `onData` while it is in use and never writes
 * anything the caller did not ask for, except the one-byte 'N' that refuses
 * encryption.
 */

import type { Connection } from "../adapter.ts";

/** PostgreSQL's special protocol codes in the startup packet. */
export const NEGOTIATE_SSL_CODE = 80877103;
export const NEGOTIATE_GSS_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;
/** PostgreSQL's MAX_STARTUP_PACKET_LENGTH. */
export const MAX_STARTUP_PACKET_LENGTH = 10000;

export type StartupPacket =
  | {
    readonly type: "startup";
    readonly protocol: number;
    readonly params: Readonly<Record<string, string>>;
  }
  | { readonly type: "cancel"; readonly pid: number; readonly key: Uint8Array }
  /** An SSLRequest, when the caller asked for it (`ssl: true`); it answers it. */
  | { readonly type: "ssl" }
  | { readonly type: "invalid"; readonly reason: string }
  | { readonly type: "closed" }
  | { readonly type: "timeout" };

export interface Message {
  /** The message type byte as a character ('Q', 'X'...). */
  readonly type: string;
  readonly body: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Buffers a connection's bytes and hands out whole packets. Bytes that
 * arrive after the startup packet stay buffered for `readMessage`.
 */
export class MessageReader {
  #conn: Connection;
  #buf = new Uint8Array(0);
  #closed = false;
  #wake: (() => void) | null = null;

  constructor(conn: Connection) {
    this.#conn = conn;
    conn.onData = (chunk) => {
      const next = new Uint8Array(this.#buf.length + chunk.length);
      next.set(this.#buf);
      next.set(chunk, this.#buf.length);
      this.#buf = next;
      this.#notify();
    };
    conn.onClose = () => {
      this.#closed = true;
      this.#notify();
    };
    conn.resume();
  }

  get closed(): boolean {
    return this.#closed;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** Resolves with `n` bytes, or null if the peer closed first or `signal` aborted. */
  async #take(n: number, signal?: AbortSignal): Promise<Uint8Array | null> {
    if (this.#buf.length < n) {
      // Only one reader waits at a time (the connection has one consumer).
      const onAbort = () => this.#notify();
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        while (this.#buf.length < n) {
          if (this.#closed || signal?.aborted) return null;
          await new Promise<void>((resolve) => (this.#wake = resolve));
        }
      } finally {
        signal?.removeEventListener("abort", onAbort);
      }
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  /** The first byte without taking it (direct SSL's check); null at close or timeout. */
  async firstByte(options: { timeoutMs?: number } = {}): Promise<number | null> {
    const timeout = options.timeoutMs === undefined
      ? undefined
      : AbortSignal.timeout(Math.max(1, options.timeoutMs));
    const head = await this.#take(1, timeout);
    if (head === null) return null;
    const next = new Uint8Array(1 + this.#buf.length);
    next.set(head);
    next.set(this.#buf, 1);
    this.#buf = next;
    return head[0] ?? null;
  }

  /** Stops reading the connection and hands over the bytes read and not taken (to a TLS session). */
  detach(): Uint8Array {
    this.#conn.onData = null;
    this.#conn.onClose = null;
    const rest = this.#buf;
    this.#buf = new Uint8Array(0);
    return rest;
  }

  /**
   * Reads the startup packet, refusing GSS encryption with 'N' as often as
   * the client asks, and SSL too unless `ssl` is set: an SSLRequest is then
   * returned for the caller to answer (PostgreSQL's ProcessStartupPacket). A
   * timeout (authentication_timeout) yields `{type: "timeout"}`; the caller
   * closes.
   */
  async readStartupPacket(
    options: { timeoutMs?: number; ssl?: boolean } = {},
  ): Promise<StartupPacket> {
    const timeout = options.timeoutMs === undefined
      ? undefined
      : AbortSignal.timeout(Math.max(1, options.timeoutMs));
    for (;;) {
      const head = await this.#take(4, timeout);
      if (head === null) return timeout?.aborted ? { type: "timeout" } : { type: "closed" };
      const len = new DataView(head.buffer).getInt32(0);
      if (len < 8 || len > MAX_STARTUP_PACKET_LENGTH) {
        return { type: "invalid", reason: "invalid length of startup packet" };
      }
      const body = await this.#take(len - 4, timeout);
      if (body === null) {
        if (timeout?.aborted) return { type: "timeout" };
        return { type: "invalid", reason: "incomplete startup packet" };
      }
      const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
      const code = view.getInt32(0);
      if (code === NEGOTIATE_SSL_CODE && options.ssl === true) return { type: "ssl" };
      if (code === NEGOTIATE_SSL_CODE || code === NEGOTIATE_GSS_CODE) {
        this.#conn.write(Uint8Array.of(0x4e)); // 'N': not supported, go on in plain text
        continue;
      }
      if (code === CANCEL_REQUEST_CODE) {
        if (body.length < 12) {
          return { type: "invalid", reason: "invalid length of startup packet" };
        }
        return { type: "cancel", pid: view.getInt32(4), key: body.slice(8) };
      }
      const params: Record<string, string> = {};
      const parts = decoder.decode(body.subarray(4)).split("\0");
      for (let i = 0; i + 1 < parts.length; i += 2) {
        const k = parts[i] ?? "";
        if (k === "") break;
        params[k] = parts[i + 1] ?? "";
      }
      return { type: "startup", protocol: code, params };
    }
  }

  /** Reads one typed message (type byte + int32 length), or null once the peer has closed. */
  async readMessage(signal?: AbortSignal): Promise<Message | null> {
    const head = await this.#take(5, signal);
    if (head === null) return null;
    const len = new DataView(head.buffer).getInt32(1);
    if (len < 4) return null;
    const body = await this.#take(len - 4, signal);
    if (body === null) return null;
    return { type: String.fromCharCode(head[0] ?? 0), body };
  }
}

/** Builds a backend message: type byte, int32 length, body. */
export function encodeMessage(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + body.length);
  out[0] = type.charCodeAt(0);
  new DataView(out.buffer).setInt32(1, 4 + body.length);
  out.set(body, 5);
  return out;
}

/** What an ErrorResponse or NoticeResponse carries. */
export interface ReportFields {
  readonly severity: "FATAL" | "ERROR" | "WARNING" | "NOTICE" | "PANIC" | "LOG" | "INFO";
  readonly code: string;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
}

function encodeFields(f: ReportFields): Uint8Array {
  const parts: Uint8Array[] = [];
  const add = (tag: string, value: string | undefined) => {
    if (value === undefined) return;
    parts.push(encoder.encode(tag + value + "\0"));
  };
  add("S", f.severity);
  add("V", f.severity);
  add("C", f.code);
  add("M", f.message);
  add("D", f.detail);
  add("H", f.hint);
  parts.push(Uint8Array.of(0));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** An ErrorResponse ('E'). */
export function encodeErrorResponse(f: ReportFields): Uint8Array {
  return encodeMessage("E", encodeFields(f));
}

/** A NoticeResponse ('N'), which is how a WARNING reaches the client. */
export function encodeNoticeResponse(f: ReportFields): Uint8Array {
  return encodeMessage("N", encodeFields(f));
}

/** Parses the fields of an ErrorResponse or NoticeResponse body (by field tag). */
export function decodeFields(body: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const tag = String.fromCharCode(body[i] ?? 0);
    const end = body.indexOf(0, i + 1);
    if (end < 0) break;
    out[tag] = decoder.decode(body.subarray(i + 1, end));
    i = end + 1;
  }
  return out;
}

/**
 * PostgreSQL's report_fork_failure_to_client: when no child could be started
 * there is nobody to speak the protocol, so the postmaster writes a bare
 * 'E' and a NUL-terminated text, which libpq prints as it is.
 */
export function encodeForkFailure(reason: string): Uint8Array {
  const text = encoder.encode(`could not fork new process for connection: ${reason}\n\0`);
  const out = new Uint8Array(1 + text.length);
  out[0] = 0x45;
  out.set(text, 1);
  return out;
}
