/**
 * The backend's view of its client's bytes: turns `Connection` callbacks
 * into awaitable whole messages (PostgreSQL's pq_getmessage with the
 * socket's wait built in). Bytes are pushed into a `MessageReader`; readers
 * await the next startup packet, authentication response or message, and
 * get null at end of file. Framing errors surface as the reader's
 * `PgError`s; an EOF in the middle of a message as the reader's `eof()`.
 * For a pass-through session, `startRaw()` ends the framing after startup:
 * the client's chunks are then taken as they came.
 *
 * What is read and not yet taken is bounded: past INPUT_HIGH_WATER bytes
 * the connection is paused (the client's bytes wait in the kernel, and a
 * client that sends faster than the engine takes, a huge COPY FROM STDIN,
 * is slowed down by TCP), and resumed once the backend has taken them.
 */

/** Bytes read from the client and not taken, above which reading pauses. */
export const INPUT_HIGH_WATER = 1024 * 1024;

import type { PgError } from "../elog.ts";
import type { Message, MessageReader } from "../protocol/mod.ts";
import { concatBytes } from "../protocol/msgbuf.ts";
import type { Connection } from "../adapter.ts";

export class ClientInput {
  #conn: Connection;
  #reader: MessageReader;
  #eof = false;
  #wake: (() => void) | null = null;
  /** Chunks not yet taken by `takeRaw()`; null while messages are framed. */
  #raw: Uint8Array[] | null = null;
  #ready: (() => void) | null = null;
  /** Reading is paused: INPUT_HIGH_WATER bytes are waiting to be taken. */
  #paused = false;
  /**
   * Called when the client's connection closes (not when the backend stops
   * reading): the backend's chance to end what runs for a client that is
   * gone, as PostgreSQL's client_connection_check_interval does.
   */
  onGone: (() => void) | null = null;

  /** The client sent a Terminate that is not read yet (see MessageReader.endsInTerminate). */
  saidGoodbye(): boolean {
    return this.#reader.endsInTerminate();
  }

  constructor(conn: Connection, reader: MessageReader) {
    this.#conn = conn;
    this.#reader = reader;
    conn.onData = (chunk) => this.#push(chunk);
    conn.onClose = () => {
      this.#eof = true;
      this.#notify();
      this.onGone?.();
    };
    conn.resume();
  }

  #push(chunk: Uint8Array): void {
    this.#reader.push(chunk);
    // Not while a read waits: it lacks the rest of a message (a large one).
    if (!this.#paused && this.#wake === null && this.#reader.buffered > INPUT_HIGH_WATER) {
      this.#paused = true;
      this.#conn.pause();
    }
    this.#notify();
  }

  /** After a read: resumes a paused connection once half of what it held was taken. */
  #taken(): void {
    if (this.#paused && !this.#eof && this.#reader.buffered <= INPUT_HIGH_WATER / 2) {
      this.#paused = false;
      this.#conn.resume();
    }
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
    this.#ready?.();
  }

  /**
   * Stops waiting: pending and later reads see end of file. Bytes the client
   * sends from now on are not read (they would land in MessageContext, which
   * the backend's next owner of the tree may be using).
   */
  stop(): void {
    this.#eof = true;
    this.#conn.onData = null;
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
      // The waiter first: resume() may hand over held bytes at once, and
      // with no read waiting, #push would pause again before this one
      // waited (a large message's rest then never came: a Bind of 8 MB
      // sent with its Parse hung the session).
      const more = new Promise<void>((resolve) => (this.#wake = resolve));
      if (this.#paused) {
        // What is buffered holds no whole message: the rest must come in.
        this.#paused = false;
        this.#conn.resume();
      }
      await more;
    }
  }

  /** The first byte the client sends, without taking it; null at end of file. */
  firstByte(): Promise<number | null> {
    return this.#await(() => this.#reader.peekByte());
  }

  /** Bytes received and not read yet. */
  get buffered(): number {
    return this.#reader.buffered;
  }

  /**
   * Moves the input onto an encrypted connection (be-secure.c's
   * secure_open_server): `open` runs the handshake on the current
   * connection, starting with the bytes read and not taken (a direct-SSL
   * ClientHello), and resolves with the connection of decrypted bytes, which
   * is the input's from then on.
   */
  async secure<T extends { readonly connection: Connection }>(
    open: (raw: Connection, early: Uint8Array) => Promise<T>,
  ): Promise<T> {
    const raw = this.#conn;
    raw.onData = null;
    raw.onClose = null;
    const opened = await open(raw, this.#reader.drain());
    const conn = opened.connection;
    this.#conn = conn;
    this.#paused = false;
    conn.onData = (chunk) => this.#push(chunk);
    conn.onClose = () => {
      this.#eof = true;
      this.#notify();
      this.onGone?.();
    };
    if (!this.#eof) conn.resume();
    return opened;
  }

  startupPacket(): Promise<Uint8Array | null> {
    return this.#await(() => this.#reader.readStartupPacket());
  }

  authResponse(expect: "password" | "sasl"): Promise<Uint8Array | null> {
    return this.#await(() => this.#reader.readAuthResponse(expect));
  }

  /** The next whole message, or null at end of file. */
  async next(): Promise<Message | null> {
    const m = await this.#await(() => this.#reader.read());
    this.#taken();
    return m;
  }

  /** A whole message already buffered, without waiting. */
  poll(): Message | null {
    const m = this.#reader.read();
    if (m !== null) this.#taken();
    return m;
  }

  /** The next whole message, framed as the client sent it (MessageReader.readFrame), or null at end of file. */
  async nextFrame(): Promise<Uint8Array | null> {
    const m = this.#reader.readFrame() ?? await this.#await(() => this.#reader.readFrame());
    this.#taken();
    return m;
  }

  /** A whole framed message already buffered, without waiting. */
  pollFrame(): Uint8Array | null {
    const m = this.#reader.readFrame();
    if (m !== null) this.#taken();
    return m;
  }

  /**
   * Ends the framing for good (a pass-through session): from now on the
   * client's bytes are kept as they came, after whatever the reader still
   * held, and `ready` is called whenever bytes arrive or the client is gone.
   * No promise per read: a relay waits on its session only.
   */
  startRaw(ready: () => void): void {
    if (this.#raw !== null) throw new TypeError("Client input is raw already");
    const raw: Uint8Array[] = [];
    const rest = this.#reader.drain();
    if (rest.length > 0) raw.push(rest);
    this.#raw = raw;
    this.#ready = ready;
    if (this.#paused) {
      this.#paused = false;
      this.#conn.resume();
    }
    this.#conn.onData = (chunk) => {
      raw.push(chunk);
      ready();
    };
  }

  /** The bytes received and not yet taken, as one array (the caller's to keep), or null. */
  takeRaw(): Uint8Array | null {
    const raw = this.#raw;
    return raw === null || raw.length === 0 ? null : takeAll(raw);
  }

  /** The client is gone, or the backend stopped reading. */
  get ended(): boolean {
    return this.#eof;
  }

  get connection(): Connection {
    return this.#conn;
  }
}

/** Empties `chunks` into one array (the chunk itself when there is one). */
function takeAll(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks.pop()!;
  const all = concatBytes(chunks);
  chunks.length = 0;
  return all;
}
