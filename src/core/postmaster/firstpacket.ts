/**
 * The postmaster's wait for a client's first packet, before it starts a
 * backend for it. PostgreSQL forks a backend per accepted socket at once: a
 * fork costs little. A pgts backend is a process or a Worker, so a flood of
 * sockets that send nothing, or half a startup packet, would each cost one
 * until authentication_timeout, and would hold the way for the clients that
 * log in. So the postmaster reads the first packet itself (a startup
 * packet, SSLRequest, GSSENCRequest or CancelRequest, at most
 * MAX_STARTUP_PACKET_LENGTH bytes; or the first bytes of a direct-SSL
 * ClientHello) within authentication_timeout, and hands the bytes to the
 * backend with the connection (`PMChildParams.clientBytes`); the backend
 * reads them first (`backendClient`). A socket that sends nothing until the
 * timeout costs the postmaster a socket and a timer.
 *
 * It never judges the packet: a bad length or version is the backend's to
 * report, as before.
 */

import { ereport } from "../elog.ts";
import { MAX_STARTUP_PACKET_LENGTH } from "../protocol/constants.ts";
import { concatBytes } from "../protocol/msgbuf.ts";
import type { ChildEnv, Connection } from "../adapter.ts";
import { TLS_HANDSHAKE_BYTE } from "../backend/secure.ts";

const LOG = { category: "postmaster" } as const;

/**
 * Reads `conn` until its first packet is whole (or cannot be: a length word
 * out of range, a TLS record), then pauses it; resolves with every byte
 * read. Null when the client left or `timeoutMs` passed first (the
 * connection is then closed).
 */
export function awaitFirstPacket(
  conn: Connection,
  options: { timeoutMs: number; abort?: AbortSignal },
): Promise<Uint8Array | null> {
  return new Promise((resolve) => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    let done = false;
    const finish = (bytes: Uint8Array | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      options.abort?.removeEventListener("abort", aborted);
      conn.onData = null;
      conn.onClose = null;
      if (bytes !== null) conn.pause();
      resolve(bytes);
    };
    const aborted = () => {
      conn.destroy();
      finish(null);
    };
    const timer = setTimeout(() => {
      ereport("LOG", "canceling authentication due to timeout", LOG);
      conn.destroy();
      finish(null);
    }, Math.max(1, options.timeoutMs));
    options.abort?.addEventListener("abort", aborted, { once: true });
    conn.onClose = () => {
      if (size > 0) ereport("LOG", "incomplete startup packet", LOG);
      finish(null);
    };
    conn.onData = (chunk) => {
      // A copy: the runtime may reuse its read buffer, and these bytes wait
      // for the backend's start.
      chunk = chunk.slice();
      chunks.push(chunk);
      size += chunk.length;
      const all = chunks.length === 1 ? chunk : joined(chunks, size);
      if (packetIsWhole(all)) finish(all);
    };
    if (options.abort?.aborted) aborted();
    else conn.resume();
  });
}

/** Whether `b` holds a whole first packet, or enough to hand over anyway. */
function packetIsWhole(b: Uint8Array): boolean {
  if (b.length >= 1 && b[0] === TLS_HANDSHAKE_BYTE) return true;
  if (b.length < 4) return false;
  const len = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
  if (len < 8 || len > MAX_STARTUP_PACKET_LENGTH) return true; // the backend reports it
  return b.length >= len;
}

function joined(chunks: Uint8Array[], size: number): Uint8Array {
  const out = concatBytes(chunks, size);
  chunks.length = 0;
  chunks.push(out);
  return out;
}

/** Bytes as a string of char codes 0–255: cloneable and JSON-safe, for child parameters. */
export function bytesToParam(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    s += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return s;
}

function paramToBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

/**
 * A backend's client connection: `env.client`, reading first the bytes the
 * postmaster read before starting it (PMChildParams.clientBytes).
 */
export function backendClient(env: ChildEnv): Connection | null {
  const conn = env.client;
  const bytes = (env.params as { clientBytes?: unknown } | null)?.clientBytes;
  if (conn === null || typeof bytes !== "string" || bytes.length === 0) return conn;
  return replaying(conn, paramToBytes(bytes));
}

/** `conn`, with `bytes` delivered before anything it reads. */
export function replaying(conn: Connection, bytes: Uint8Array): Connection {
  return new ReplayConnection(conn, bytes);
}

class ReplayConnection implements Connection {
  onClose: (() => void) | null = null;
  #onData: ((chunk: Uint8Array) => void) | null = null;
  #conn: Connection;
  /** The postmaster's bytes, then whatever arrived while nobody read (as the adapters keep it). */
  #queued: Uint8Array[];
  #paused = true;

  constructor(conn: Connection, early: Uint8Array) {
    this.#conn = conn;
    this.#queued = [early];
    conn.onData = (chunk) => {
      if (this.#onData === null || this.#paused || this.#queued.length > 0) {
        this.#queued.push(chunk);
      } else this.#onData(chunk);
    };
    conn.onClose = () => this.onClose?.();
  }

  get onData(): ((chunk: Uint8Array) => void) | null {
    return this.#onData;
  }
  set onData(fn: ((chunk: Uint8Array) => void) | null) {
    this.#onData = fn;
    if (!this.#paused) this.#flush();
  }

  #flush(): void {
    const fn = this.#onData;
    while (fn !== null && this.#queued.length > 0 && this.#onData === fn && !this.#paused) {
      fn(this.#queued.shift()!);
    }
  }

  get remote() {
    return this.#conn.remote;
  }
  resume(): void {
    this.#paused = false;
    this.#flush();
    // The reader may have paused while it took the queued bytes.
    if (!this.#paused) this.#conn.resume();
  }
  pause(): void {
    this.#paused = true;
    this.#conn.pause();
  }
  write(bytes: Uint8Array): boolean {
    return this.#conn.write(bytes);
  }
  drained(): Promise<void> {
    return this.#conn.drained();
  }
  end(): void {
    this.#conn.end();
  }
  destroy(): void {
    this.#conn.destroy();
  }
}
