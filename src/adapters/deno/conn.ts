/**
 * Deno's own sockets (`Deno.listen`, `Deno.Conn`) for the connections that
 * stay in this realm: the clients of in-process backends and the engine
 * child's link. node:net under Deno runs every read and write through its
 * stream machinery on top of the same `Deno.Conn` operations: a bare wire
 * server took 21 µs of CPU per query with node:net and 13 µs with
 * `Deno.Conn` (pgbench `SELECT 1`, 4 clients); pgts under `deno run` took
 * 3-5 µs less per statement with this adapter (about 4% of it), and the
 * same per connection. Connections handed to a subprocess still need
 * node:net (deno/net.ts): `child.send(msg, socket)` takes node sockets only.
 *
 * A `Deno.Conn` has no synchronous write, so `write` copies the caller's
 * bytes (the backend reuses its buffers once the call returns) and one
 * write at a time runs, in order; it asks the caller to wait (`drained`)
 * once more than HIGH_WATER bytes are queued, as a full socket buffer does.
 */

import type {
  AcceptedConnection,
  ListenAddress,
  Listener,
  NetAdapter,
  RemoteAddress,
} from "../../core/adapter.ts";
import { removeStaleSocket, setSocketAccess, unlinkQuietly } from "../node/unixsocket.ts";
import { unmappedText } from "../../core/auth/inet.ts";

/** Bytes read at once (one reused buffer per connection; what is delivered is a copy). */
const READ_SIZE = 64 * 1024;
/** Queued bytes above which `write` says to wait for `drained`. */
const HIGH_WATER = 256 * 1024;
/** How long `end` waits for the peer's close after its FIN before closing anyway. */
const LINGER_MS = 5_000;

export class DenoConnConnection implements AcceptedConnection {
  readonly remote: RemoteAddress;
  readonly handle: unknown = null;
  onClose: (() => void) | null = null;

  #conn: Deno.Conn;
  #onData: ((chunk: Uint8Array) => void) | null = null;
  /** Chunks read while nobody took them (no onData yet, or paused after the read began). */
  #queued: Uint8Array[] = [];
  #paused = true;
  #reading = false;
  #buffer: Uint8Array | null = null;
  /** Bytes waiting for the write in flight, in order. */
  #out: Uint8Array[] = [];
  #outBytes = 0;
  #writing = false;
  #drainWaiters: (() => void)[] = [];
  /** end() was called: close once what is queued is written. */
  #ending = false;
  /** The peer closed its side (EOF): close once what is queued is written. */
  #peerEnded = false;
  #closed = false;
  #linger: ReturnType<typeof setTimeout> | undefined;

  constructor(conn: Deno.Conn, remote: RemoteAddress) {
    this.#conn = conn;
    this.remote = remote;
  }

  get onData(): ((chunk: Uint8Array) => void) | null {
    return this.#onData;
  }

  set onData(fn: ((chunk: Uint8Array) => void) | null) {
    this.#onData = fn;
    this.#deliverQueued();
  }

  resume(): void {
    if (this.#closed) return;
    this.#paused = false;
    this.#deliverQueued();
    if (!this.#paused && !this.#reading) void this.#readLoop();
  }

  pause(): void {
    this.#paused = true;
  }

  write(bytes: Uint8Array): boolean {
    if (this.#closed || this.#ending) return true;
    if (bytes.length === 0) return this.#outBytes <= HIGH_WATER;
    this.#out.push(bytes.slice());
    this.#outBytes += bytes.length;
    if (!this.#writing) void this.#writeLoop();
    return this.#outBytes <= HIGH_WATER;
  }

  drained(): Promise<void> {
    if (this.#outBytes === 0 || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  end(): void {
    if (this.#closed || this.#ending) return;
    this.#ending = true;
    if (!this.#writing) this.#finishEnd();
  }

  destroy(): void {
    this.#close();
  }

  #deliverQueued(): void {
    const fn = this.#onData;
    while (fn !== null && !this.#paused && this.#queued.length > 0 && this.#onData === fn) {
      fn(this.#queued.shift()!);
    }
  }

  async #readLoop(): Promise<void> {
    this.#reading = true;
    const buffer = this.#buffer ??= new Uint8Array(READ_SIZE);
    try {
      while (!this.#paused && !this.#closed && !this.#peerEnded) {
        const n = await this.#conn.read(buffer);
        if (this.#closed) return;
        if (n === null) {
          this.#peerEnded = true;
          // The client went away: what is queued for it still goes (as
          // node:net ends a socket whose peer ended), then the close.
          if (!this.#writing) this.#close();
          return;
        }
        if (this.#ending) continue; // Ours is closing: what comes now is dropped.
        const chunk = buffer.slice(0, n);
        if (this.#onData === null || this.#paused || this.#queued.length > 0) {
          this.#queued.push(chunk);
        } else this.#onData(chunk);
      }
    } catch {
      // ECONNRESET and the like: the connection is gone.
      this.#close();
    } finally {
      this.#reading = false;
    }
  }

  async #writeLoop(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#out.length > 0 && !this.#closed) {
        const chunk = this.#out.length === 1 ? this.#out[0]! : joined(this.#out);
        this.#out = [];
        let at = 0;
        while (at < chunk.length) at += await this.#conn.write(chunk.subarray(at));
        this.#outBytes -= chunk.length;
      }
    } catch {
      this.#close();
      return;
    } finally {
      this.#writing = false;
    }
    if (this.#closed) return;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
    if (this.#ending) this.#finishEnd();
    else if (this.#peerEnded) this.#close();
  }

  /**
   * end()'s last step, once everything queued is written: the FIN, then
   * the close when the peer closes too (or after LINGER_MS). Closing while
   * the peer's bytes are unread would send a reset, which can destroy the
   * last messages (a FATAL) before the client reads them.
   */
  #finishEnd(): void {
    if (this.#closed) return;
    if (this.#peerEnded) {
      this.#close();
      return;
    }
    this.#conn.closeWrite().then(() => {
      if (this.#closed) return;
      const linger = setTimeout(() => this.#close(), LINGER_MS);
      Deno.unrefTimer(linger);
      this.#linger = linger;
      // Read (and drop) up to the peer's EOF, which closes.
      this.#paused = false;
      if (!this.#reading) void this.#readLoop();
    }, () => this.#close());
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#linger);
    this.#out = [];
    this.#outBytes = 0;
    try {
      this.#conn.close();
    } catch {
      // Closed already.
    }
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
    // Reported on a later turn, as a socket's "close" event is.
    queueMicrotask(() => this.onClose?.());
  }
}

function joined(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function remoteOf(conn: Deno.Conn, unixPath: string | null): RemoteAddress {
  if (unixPath !== null) return { family: "unix", path: unixPath };
  const a = conn.remoteAddr as Deno.NetAddr;
  const l = conn.localAddr as Deno.NetAddr;
  return {
    family: "tcp",
    address: unmappedText(a.hostname),
    port: a.port,
    local: { address: unmappedText(l.hostname), port: l.port },
  };
}

/** Listeners on `Deno.listen` whose connections are served in this realm (no hand-off). */
export class DenoConnNetAdapter implements NetAdapter {
  /**
   * Its listeners on 0.0.0.0, by port: Deno cannot set IPV6_V6ONLY, so a
   * "::" on the same port takes over from one (one dual-stack socket).
   */
  readonly #anyIPv4 = new Map<number, { listener: Deno.Listener; accepting: Promise<void> }>();

  async listen(
    address: ListenAddress,
    onConnection: (conn: AcceptedConnection) => void,
  ): Promise<Listener> {
    const unixPath = address.family === "unix" ? address.path : null;
    if (unixPath !== null) await removeStaleSocket(unixPath);
    const open = (hostname: string) =>
      unixPath !== null
        ? Deno.listen({ transport: "unix", path: unixPath })
        : Deno.listen({ hostname, port: port(address) });
    const holder = {
      listener: null as Deno.Listener | null,
      accepting: Promise.resolve(),
    };
    try {
      holder.listener = open(address.family === "tcp" ? address.host : "");
    } catch (e) {
      const v4 = address.family === "tcp" && address.host === "::" &&
          e instanceof Deno.errors.AddrInUse
        ? this.#anyIPv4.get(address.port)
        : undefined;
      if (v4 === undefined) {
        // The postmaster reports node's code (EADDRINUSE) in PostgreSQL's words.
        if (e instanceof Deno.errors.AddrInUse) Object.assign(e, { code: "EADDRINUSE" });
        throw e;
      }
      // One dual-stack socket serves both (its IPv4 clients' addresses
      // unmapped), in the IPv4 listener's place too.
      // The port is free once the pending accept has ended, not at close().
      v4.listener.close();
      await v4.accepting;
      holder.listener = open("::");
      v4.listener = holder.listener;
    }
    const listener = holder.listener;
    if (address.family === "tcp" && address.host === "0.0.0.0") {
      this.#anyIPv4.set(
        address.port,
        holder as { listener: Deno.Listener; accepting: Promise<void> },
      );
    }
    if (address.family === "unix") {
      try {
        setSocketAccess(address.path, address);
      } catch (e) {
        listener.close();
        unlinkQuietly(address.path);
        throw e;
      }
    }
    holder.accepting = (async () => {
      try {
        for await (const conn of listener) {
          if (unixPath === null) {
            (conn as Deno.TcpConn).setNoDelay(true);
            // SO_KEEPALIVE, as PostgreSQL's; Deno cannot set its idle time
            // (tcp_keepalives_idle): the system's.
            (conn as Deno.TcpConn).setKeepAlive(true);
          }
          onConnection(new DenoConnConnection(conn, remoteOf(conn, unixPath)));
        }
      } catch {
        // The listener was closed.
      }
    })();
    const real: ListenAddress = address.family === "tcp"
      ? { family: "tcp", host: address.host, port: (listener.addr as Deno.NetAddr).port }
      : address;
    return {
      address: real,
      close() {
        // Stop accepting; connections already accepted are their servers'.
        try {
          holder.listener?.close();
        } catch {
          // Closed already.
        }
        if (unixPath !== null) unlinkQuietly(unixPath);
        return Promise.resolve();
      },
    };
  }
}

function port(address: ListenAddress): number {
  return address.family === "tcp" ? address.port : 0;
}
