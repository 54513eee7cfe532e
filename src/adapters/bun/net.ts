/**
 * The Bun NetAdapter: `Bun.listen` on TCP and Unix sockets, each accepted
 * socket wrapped as an AcceptedConnection whose `handle` exposes the fd the
 * subprocess launcher puts in a child's stdio. The same Connection class
 * serves the child side, where `Bun.connect({ fd })` adopts that fd (a
 * `new net.Socket({ fd })` would never see data under Bun 1.4).
 *
 * Nothing here may import node:net at module level: a child imports this
 * file to adopt its client, and node:net would slow every child's start.
 *
 * Sockets are paused in `open`, before any byte is read, so that a
 * connection handed to a child reaches it with the startup packet intact.
 * A listener whose connections stay in this process (`handOff: false`)
 * leaves them reading and holds early bytes itself until `resume()`, and
 * its `pause()` stops delivery only: the kernel socket is paused once bytes
 * come while paused (one chunk held at most), not at every pause. The
 * postmaster pauses each client between its first packet and its backend's
 * start, when a client sends nothing; Bun's pause and resume of a socket
 * cost three epoll changes, a wake-up and a setsockopt.
 */

import type {
  AcceptedConnection,
  ListenAddress,
  Listener,
  NetAdapter,
  RemoteAddress,
} from "../../core/adapter.ts";
import type { BunApi, BunSocket, BunSocketHandler } from "./bun.d.ts";
import { parseIp } from "../../core/auth/inet.ts";

/** Bun's global, typed by the slice declared in bun.d.ts. */
export function bunApi(): BunApi {
  const bun = (globalThis as { Bun?: BunApi }).Bun;
  if (bun === undefined) throw new TypeError("The Bun adapter needs the Bun runtime");
  return bun;
}

/** `AcceptedConnection.handle` for a Bun socket. */
export interface BunSocketHandle {
  readonly kind: "bun-socket";
  readonly fd: number;
  /** Drops this process's copy of the socket after a hand-off, silently. */
  release(): void;
}

export function isBunSocketHandle(x: unknown): x is BunSocketHandle {
  return typeof x === "object" && x !== null && (x as { kind?: unknown }).kind === "bun-socket";
}

interface SocketData {
  conn: BunSocketConnection | null;
}

export class BunSocketConnection implements AcceptedConnection {
  readonly remote: RemoteAddress;
  readonly handle: BunSocketHandle;
  onClose: (() => void) | null = null;

  #socket: BunSocket<SocketData>;
  #onData: ((chunk: Uint8Array) => void) | null = null;
  /** Delivery stopped (the Connection contract's pause), and whether the kernel socket is paused too. */
  #paused = true;
  #socketPaused: boolean;
  /** Whether a pause leaves the kernel socket reading until bytes come (a socket never handed off). */
  #lazyPause: boolean;
  /**
   * The peer closed while delivery was paused and the kernel socket still
   * read (a lazy pause): told at resume, after the bytes that came before,
   * as a socket paused in the kernel would have shown it.
   */
  #closeDeferred = false;
  /** end() or destroy() was called: the close is this side's, told at once. */
  #closing = false;
  #queued: Uint8Array[] = [];
  // Bytes the kernel did not take yet, written on "drain".
  #pending: Uint8Array[] = [];
  #drainWaiters: Array<() => void> = [];
  #ending = false;
  #released = false;
  #closed = false;

  constructor(socket: BunSocket<SocketData>, remote: RemoteAddress, handOff = true) {
    this.#socket = socket;
    this.remote = remote;
    this.#socketPaused = handOff;
    this.#lazyPause = !handOff;
    this.handle = {
      kind: "bun-socket",
      fd: socket.fd,
      release: () => {
        this.#released = true;
        socket.terminate();
      },
    };
  }

  get onData(): ((chunk: Uint8Array) => void) | null {
    return this.#onData;
  }

  set onData(fn: ((chunk: Uint8Array) => void) | null) {
    this.#onData = fn;
    this.#deliverQueued();
  }

  resume(): void {
    this.#paused = false;
    if (this.#socketPaused) {
      this.#socketPaused = false;
      this.#socket.resume();
    }
    this.#deliverQueued();
  }

  pause(): void {
    this.#paused = true;
    if (!this.#lazyPause) this.#pauseSocket();
  }

  #pauseSocket(): void {
    if (!this.#socketPaused) {
      this.#socketPaused = true;
      this.#socket.pause();
    }
  }

  #deliverQueued(): void {
    const fn = this.#onData;
    while (fn !== null && this.#queued.length > 0 && this.#onData === fn && !this.#paused) {
      fn(this.#queued.shift()!);
    }
    if (this.#closeDeferred && !this.#paused && this.#queued.length === 0) this.#tellClosed();
  }

  #tellClosed(): void {
    this.#closeDeferred = false;
    this.onClose?.();
  }

  write(bytes: Uint8Array): boolean {
    if (this.#closed) return true;
    if (this.#pending.length > 0) {
      this.#pending.push(bytes.slice());
      return false;
    }
    const n = this.#socket.write(bytes);
    if (n < 0) return true; // Closed under us; "close" reports it.
    if (n < bytes.length) this.#pending.push(bytes.slice(n));
    return this.#pending.length === 0;
  }

  drained(): Promise<void> {
    if (this.#pending.length === 0 || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  end(): void {
    this.#closing = true;
    if (this.#closeDeferred) this.#tellClosed();
    if (this.#pending.length > 0) this.#ending = true;
    else this.#socket.end();
  }

  destroy(): void {
    this.#closing = true;
    if (this.#closeDeferred) this.#tellClosed();
    this.#pending = [];
    this.#socket.terminate();
  }

  /** Socket handler: bytes arrived. */
  received(chunk: Uint8Array): void {
    if (this.#paused) {
      // A lazy pause takes effect now: the client's next bytes wait in the kernel.
      this.#queued.push(chunk);
      this.#pauseSocket();
    } else if (this.#onData === null) this.#queued.push(chunk);
    else this.#onData(chunk);
  }

  /** Socket handler: the kernel can take more. */
  flush(): void {
    while (this.#pending.length > 0) {
      const head = this.#pending[0]!;
      const n = this.#socket.write(head);
      if (n < 0) return;
      if (n < head.length) {
        this.#pending[0] = head.subarray(n);
        return;
      }
      this.#pending.shift();
    }
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
    if (this.#ending) this.#socket.end();
  }

  /** Socket handler: the socket is gone. */
  closed(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
    if (this.#released) return;
    if (this.#paused && this.#lazyPause && !this.#closing) this.#closeDeferred = true;
    else this.onClose?.();
  }
}

function handlers(
  remoteOf: (socket: BunSocket<SocketData>) => RemoteAddress,
  onOpen: (conn: BunSocketConnection) => void,
  handOff = true,
  keepAliveIdleMs?: number,
): BunSocketHandler<SocketData> {
  return {
    open(socket) {
      if (handOff) socket.pause();
      // A TCP client's: SO_KEEPALIVE (tcp_keepalives_idle, else the system's idle time).
      if (keepAliveIdleMs !== undefined) {
        socket.setKeepAlive(true, keepAliveIdleMs > 0 ? keepAliveIdleMs : undefined);
      }
      const conn = new BunSocketConnection(socket, remoteOf(socket), handOff);
      socket.data = { conn };
      onOpen(conn);
    },
    data(socket, chunk) {
      socket.data.conn?.received(chunk);
    },
    drain(socket) {
      socket.data.conn?.flush();
    },
    close(socket) {
      socket.data.conn?.closed();
    },
    error() {
      // "close" follows; that is what a Connection reports.
    },
  };
}

export interface BunNetAdapterOptions {
  /**
   * Whether accepted sockets may be handed to another process (the default):
   * they are then paused in the kernel until a consumer resumes them.
   */
  readonly handOff?: boolean;
}

export class BunNetAdapter implements NetAdapter {
  readonly #handOff: boolean;

  constructor(options: BunNetAdapterOptions = {}) {
    this.#handOff = options.handOff ?? true;
  }

  async listen(
    address: ListenAddress,
    onConnection: (conn: AcceptedConnection) => void,
  ): Promise<Listener> {
    const bun = bunApi();
    if (address.family === "unix") {
      // Imported here, not at the top: it loads node:net, which costs a child
      // that only adopts its client socket about 10 ms of start-up.
      const { removeStaleSocket, setSocketAccess, unlinkQuietly } = await import(
        "../node/unixsocket.ts"
      );
      const path = address.path;
      await removeStaleSocket(path);
      const listener = bun.listen<SocketData>({
        unix: path,
        socket: handlers(() => ({ family: "unix", path }), onConnection, this.#handOff),
      });
      try {
        setSocketAccess(path, address);
      } catch (e) {
        listener.stop();
        unlinkQuietly(path);
        throw e;
      }
      return {
        address,
        close() {
          listener.stop();
          unlinkQuietly(path);
          return Promise.resolve();
        },
      };
    }
    // Bound to one address, the listener is every connection's local end:
    // no getsockname per connection for it.
    let local: { address: string; port: number } | undefined;
    const host = boundAddress(address.host);
    const listener = bun.listen<SocketData>({
      hostname: address.host,
      port: address.port,
      // As PostgreSQL sets IPV6_V6ONLY: "::" beside "0.0.0.0" on one port.
      ipv6Only: address.host.includes(":"),
      socket: handlers(
        (socket) => tcpRemote(socket, host === null ? undefined : local),
        onConnection,
        this.#handOff,
        address.keepAliveIdleMs ?? 0,
      ),
    });
    if (host !== null) local = { address: host, port: listener.port };
    return {
      address: { family: "tcp", host: address.host, port: listener.port },
      close() {
        listener.stop();
        return Promise.resolve();
      },
    };
  }
}

/**
 * `host` as Bun spells a socket's local address, when a listener on it
 * accepts on that one address only; null for a wildcard (0.0.0.0, ::) or
 * a spelling Bun may write otherwise.
 */
function boundAddress(host: string): string | null {
  const ip = parseIp(host);
  if (ip === null || ip.bytes.every((b) => b === 0)) return null;
  if (ip.family === 4) return ip.bytes.join(".") === host ? host : null;
  return host === "::1" ? host : null;
}

/**
 * A TCP client's address; the port, a second getpeername, is read only if
 * something asks for it (pg_hba.conf and the logs need only the address),
 * and so is the local end, unless the listener's address is it.
 */
function tcpRemote(
  socket: BunSocket<SocketData>,
  bound?: { address: string; port: number },
): RemoteAddress {
  let port: number | undefined;
  let local = bound;
  return {
    family: "tcp",
    address: socket.remoteAddress,
    get port() {
      return port ??= socket.remotePort;
    },
    get local() {
      if (local === undefined && socket.localAddress !== undefined) {
        local = { address: socket.localAddress, port: socket.localPort ?? 0 };
      }
      return local;
    },
  };
}

/** In a child: adopts the client socket the launcher put at `fd`. */
export async function adoptSocketFd(
  fd: number,
  remote: RemoteAddress,
): Promise<BunSocketConnection> {
  let conn: BunSocketConnection | null = null;
  await bunApi().connect<SocketData>({
    fd,
    socket: handlers(() => remote, (c) => (conn = c)),
  });
  if (conn === null) throw new Error(`could not adopt client socket at fd ${fd}`);
  return conn;
}

/**
 * In a child: takes over a client socket that came over IPC, which Bun
 * hands over as a node:net Socket whose `_handle` is a socket of its own.
 * `reload` gives that socket our handlers, so the client's bytes no longer
 * pass through node:net's streams (for a backend that relays, about a third
 * of its CPU per statement). The node:net wrapper is left without handlers
 * and never closed: the socket is the connection's alone. Bytes node:net
 * read before the reload come first. Null when the handle is not such a
 * socket (the caller then keeps the node:net wrapper).
 */
export function adoptNodeSocket(
  socket: unknown,
  remote: RemoteAddress,
): BunSocketConnection | null {
  const wrapper = socket as { _handle?: unknown; read?: () => unknown } | null;
  const native = wrapper?._handle as Partial<BunSocket<SocketData>> | undefined;
  if (typeof native?.reload !== "function" || typeof native.write !== "function") return null;
  const own = native as BunSocket<SocketData>;
  own.pause();
  const conn = new BunSocketConnection(own, remote);
  own.reload({ socket: handlers(() => remote, () => {}) });
  own.data = { conn };
  const early = wrapper?.read?.();
  if (early instanceof Uint8Array && early.length > 0) conn.received(early);
  return conn;
}
