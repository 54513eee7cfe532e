/**
 * A `Connection`'s bytes, awaited: `take(n)` resolves once n bytes have come
 * (pqcomm.c's pq_getbytes with the wait for the socket built in). On it, the
 * two reads that code without a backend's MessageReader needs: the startup
 * packet (the first steps of ProcessStartupPacket: GSSENCRequest, and
 * SSLRequest unless the caller runs SSL, refused with 'N', as often as the
 * client asks) and one typed message. A dead-end (src/core/postmaster/
 * deadend.ts) reads its client with it, the upstream engine its server's
 * startup answers (src/engines/upstream/connect.ts); a backend frames its
 * client with MessageReader over ClientInput instead.
 *
 * It owns the connection's `onData` and `onClose` while in use and never
 * writes anything the caller did not ask for, except the one-byte 'N' that
 * refuses encryption.
 */

import type { Connection } from "../adapter.ts";
import {
  CANCEL_REQUEST_CODE,
  ENCRYPTION_REFUSED,
  MAX_STARTUP_PACKET_LENGTH,
  NEGOTIATE_GSS_CODE,
  NEGOTIATE_SSL_CODE,
} from "./constants.ts";
import type { Message } from "./reader.ts";

/** What `readStartupPacket` found. */
export type StartupRead =
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

const decoder = new TextDecoder();

/**
 * Buffers a connection's bytes and hands out as many as asked for. Bytes
 * that arrive after the startup packet stay buffered for `readMessage`.
 */
export class ConnectionReader {
  #conn: Connection;
  #buf = new Uint8Array(0);
  #closed = false;
  #wake: (() => void) | null = null;

  /** `initial`: bytes already read from `conn` (by an earlier reader), taken first. */
  constructor(conn: Connection, options: { initial?: Uint8Array } = {}) {
    this.#conn = conn;
    if (options.initial !== undefined) this.#buf = options.initial.slice();
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
  async take(n: number, signal?: AbortSignal): Promise<Uint8Array | null> {
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
    const head = await this.take(1, timeout);
    if (head === null) return null;
    const next = new Uint8Array(1 + this.#buf.length);
    next.set(head);
    next.set(this.#buf, 1);
    this.#buf = next;
    return head[0] ?? null;
  }

  /** A copy of the bytes read and not taken; they stay for the next `take`. */
  buffered(): Uint8Array {
    return this.#buf.slice();
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
  ): Promise<StartupRead> {
    const timeout = options.timeoutMs === undefined
      ? undefined
      : AbortSignal.timeout(Math.max(1, options.timeoutMs));
    for (;;) {
      const head = await this.take(4, timeout);
      if (head === null) return timeout?.aborted ? { type: "timeout" } : { type: "closed" };
      const len = new DataView(head.buffer).getInt32(0);
      if (len < 8 || len > MAX_STARTUP_PACKET_LENGTH) {
        return { type: "invalid", reason: "invalid length of startup packet" };
      }
      const body = await this.take(len - 4, timeout);
      if (body === null) {
        if (timeout?.aborted) return { type: "timeout" };
        return { type: "invalid", reason: "incomplete startup packet" };
      }
      const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
      const code = view.getUint32(0);
      if (code === NEGOTIATE_SSL_CODE && options.ssl === true) return { type: "ssl" };
      if (code === NEGOTIATE_SSL_CODE || code === NEGOTIATE_GSS_CODE) {
        this.#conn.write(Uint8Array.of(ENCRYPTION_REFUSED));
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
    const head = await this.take(5, signal);
    if (head === null) return null;
    const len = new DataView(head.buffer).getInt32(1);
    if (len < 4) return null;
    const body = await this.take(len - 4, signal);
    if (body === null) return null;
    return { type: head[0] ?? 0, body };
  }
}
