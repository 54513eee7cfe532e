/**
 * The backend's view of its client's bytes: turns `Connection` callbacks
 * into awaitable whole messages (PostgreSQL's pq_getmessage with the
 * socket's wait built in). Bytes are pushed into a `MessageReader`; readers
 * await the next startup packet, authentication response or message, and
 * get null at end of file. Framing errors surface as the reader's
 * `PgError`s; an EOF in the middle of a message as the reader's `eof()`.
 * For a pass-through session, `raw()` ends the framing after startup: the
 * client's chunks are then returned as they came.
 */

import type { PgError } from "../elog.ts";
import type { Message, MessageReader } from "../protocol/mod.ts";
import type { Connection } from "../postmaster/launch.ts";

export class ClientInput {
  #conn: Connection;
  #reader: MessageReader;
  #eof = false;
  #wake: (() => void) | null = null;
  /** Chunks not yet returned by `raw()`; null while messages are framed. */
  #raw: Uint8Array[] | null = null;

  constructor(conn: Connection, reader: MessageReader) {
    this.#conn = conn;
    this.#reader = reader;
    conn.onData = (chunk) => {
      reader.push(chunk);
      this.#notify();
    };
    conn.onClose = () => {
      this.#eof = true;
      this.#notify();
    };
    conn.resume();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** Stops waiting: pending and later reads see end of file. */
  stop(): void {
    this.#eof = true;
    this.#notify();
  }

  /** Waits until `read` returns something or the client is gone (null). */
  async #await<T>(read: () => T | null): Promise<T | null> {
    for (;;) {
      const v = read();
      if (v !== null) return v;
      if (this.#eof) {
        const err: PgError | null = this.#reader.eof();
        if (err !== null) throw err;
        return null;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  startupPacket(): Promise<Uint8Array | null> {
    return this.#await(() => this.#reader.readStartupPacket());
  }

  authResponse(expect: "password" | "sasl"): Promise<Uint8Array | null> {
    return this.#await(() => this.#reader.readAuthResponse(expect));
  }

  /** The next whole message, or null at end of file. */
  next(): Promise<Message | null> {
    return this.#await(() => this.#reader.read());
  }

  /** A whole message already buffered, without waiting. */
  poll(): Message | null {
    return this.#reader.read();
  }

  /**
   * All bytes received and not yet returned, as one array (whatever the
   * reader still held first), or null at end of file. The first call ends
   * the framing for good. The arrays are the caller's to keep.
   */
  raw(): Promise<Uint8Array | null> {
    if (this.#raw === null) {
      const raw: Uint8Array[] = [];
      const rest = this.#reader.drain();
      if (rest.length > 0) raw.push(rest);
      this.#raw = raw;
      this.#conn.onData = (chunk) => {
        raw.push(chunk);
        this.#notify();
      };
    }
    const raw = this.#raw;
    if (raw.length > 0) return Promise.resolve(takeAll(raw));
    return this.#await(() => (raw.length > 0 ? takeAll(raw) : null));
  }

  get connection(): Connection {
    return this.#conn;
  }
}

/** Empties `chunks` into one array (the chunk itself when there is one). */
function takeAll(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks.pop()!;
  let size = 0;
  for (const c of chunks) size += c.length;
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  chunks.length = 0;
  return all;
}
