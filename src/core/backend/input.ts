/**
 * The backend's view of its client's bytes: turns `Connection` callbacks
 * into awaitable whole messages (PostgreSQL's pq_getmessage with the
 * socket's wait built in). Bytes are pushed into a `MessageReader`; readers
 * await the next startup packet, authentication response or message, and
 * get null at end of file. Framing errors surface as the reader's
 * `PgError`s; an EOF in the middle of a message as the reader's `eof()`.
 */

import type { PgError } from "../elog.ts";
import type { Message, MessageReader } from "../protocol/mod.ts";
import type { Connection } from "../postmaster/launch.ts";

export class ClientInput {
  #conn: Connection;
  #reader: MessageReader;
  #eof = false;
  #wake: (() => void) | null = null;

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

  get connection(): Connection {
    return this.#conn;
  }
}
