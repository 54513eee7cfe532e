/**
 * Sockets without sockets: an in-memory NetAdapter whose connections are
 * pairs of connected `Connection` objects, so the postmaster, its backends
 * and test clients can talk through the frontend/backend protocol in one
 * realm.
 *
 * The model is a stream socket's, reduced: bytes written on one end are
 * delivered to the other in order, on a later turn, while it is resumed;
 * `end()` closes after what was written has been delivered; `destroy()`
 * closes at once, but bytes already written (already "on the wire") still
 * reach the peer, as they would over TCP. Each end's `onClose` fires once.
 * There is no backpressure: `write` always returns true.
 */

import type {
  AcceptedConnection,
  Connection,
  ListenAddress,
  Listener,
  NetAdapter,
  RemoteAddress,
} from "../../core/adapter.ts";

/** One end of an in-memory connection. */
export class MemoryConnection implements AcceptedConnection {
  readonly remote: RemoteAddress;
  readonly handle: unknown = null;
  onData: ((chunk: Uint8Array) => void) | null = null;
  onClose: (() => void) | null = null;
  #peer: MemoryConnection | null = null;
  #inbox: Uint8Array[] = [];
  #paused = true;
  #scheduled = false;
  /** No more writes from this end. */
  #ended = false;
  /** The peer has ended: close once the inbox is drained. */
  #eof = false;
  #closed = false;

  constructor(remote: RemoteAddress) {
    this.remote = remote;
  }

  /** Connects two ends; used by `connectionPair`. */
  static pair(
    a: RemoteAddress,
    b: RemoteAddress,
  ): [MemoryConnection, MemoryConnection] {
    // `a` is where the first end's peer is, i.e. the first end's remote.
    const first = new MemoryConnection(a);
    const second = new MemoryConnection(b);
    first.#peer = second;
    second.#peer = first;
    return [first, second];
  }

  get closed(): boolean {
    return this.#closed;
  }

  resume(): void {
    this.#paused = false;
    this.#schedule();
  }

  pause(): void {
    this.#paused = true;
  }

  write(bytes: Uint8Array): boolean {
    if (this.#ended || this.#closed) return true;
    const peer = this.#peer;
    if (peer !== null) peer.#receive(bytes.slice());
    return true;
  }

  drained(): Promise<void> {
    return Promise.resolve();
  }

  end(): void {
    if (this.#ended || this.#closed) return;
    this.#ended = true;
    const peer = this.#peer;
    if (peer !== null) peer.#peerEnded();
    this.#close();
  }

  destroy(): void {
    if (this.#closed) return;
    this.#ended = true;
    this.#inbox.length = 0;
    const peer = this.#peer;
    if (peer !== null) peer.#peerEnded();
    this.#close();
  }

  #receive(chunk: Uint8Array): void {
    if (this.#closed) return;
    this.#inbox.push(chunk);
    this.#schedule();
  }

  #peerEnded(): void {
    if (this.#closed) return;
    this.#eof = true;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    while (!this.#paused && !this.#closed && this.onData !== null) {
      const chunk = this.#inbox.shift();
      if (chunk === undefined) break;
      this.onData(chunk);
    }
    if (this.#eof && this.#inbox.length === 0) {
      this.#ended = true;
      this.#close();
    }
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#inbox.length = 0;
    // On a later turn, like a socket's close event.
    queueMicrotask(() => this.onClose?.());
  }
}

/** Two connected ends: what the client holds and what the server accepted. */
export function connectionPair(
  options: { clientSees?: RemoteAddress; serverSees?: RemoteAddress } = {},
): [client: MemoryConnection, server: MemoryConnection] {
  return MemoryConnection.pair(
    options.clientSees ?? { family: "tcp", address: "127.0.0.1", port: 5432 },
    options.serverSees ?? { family: "tcp", address: "127.0.0.1", port: 50000 },
  );
}

function key(a: ListenAddress): string {
  return a.family === "unix" ? `unix:${a.path}` : `tcp:${a.host}:${a.port}`;
}

/** A NetAdapter over in-memory connections; `connect` plays the client. */
export class MemoryNetAdapter implements NetAdapter {
  #listeners = new Map<string, (conn: AcceptedConnection) => void>();
  #nextPort = 40000;
  #nextClientPort = 50000;

  listen(
    address: ListenAddress,
    onConnection: (conn: AcceptedConnection) => void,
  ): Promise<Listener> {
    const bound: ListenAddress = address.family === "tcp" && address.port === 0
      ? { ...address, port: this.#nextPort++ }
      : address;
    const k = key(bound);
    if (this.#listeners.has(k)) {
      return Promise.reject(new Error(`could not bind ${k}: address already in use`));
    }
    this.#listeners.set(k, onConnection);
    return Promise.resolve({
      address: bound,
      close: () => {
        if (this.#listeners.get(k) === onConnection) this.#listeners.delete(k);
        return Promise.resolve();
      },
    });
  }

  /** Opens a client connection to a listening address; throws if nobody listens there. */
  connect(address: ListenAddress): Connection {
    const onConnection = this.#listeners.get(key(address));
    if (onConnection === undefined) {
      throw new Error(`could not connect to ${key(address)}: connection refused`);
    }
    const serverSees: RemoteAddress = address.family === "unix"
      ? { family: "unix", path: address.path }
      : { family: "tcp", address: "127.0.0.1", port: this.#nextClientPort++ };
    const clientSees: RemoteAddress = address.family === "unix"
      ? { family: "unix", path: address.path }
      : { family: "tcp", address: address.host, port: address.port };
    const [client, server] = connectionPair({ clientSees, serverSees });
    queueMicrotask(() => onConnection(server));
    return client;
  }
}
