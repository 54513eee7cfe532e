/**
 * A `node:net` socket seen as a pgts Connection. Used wherever the socket API
 * is node's: the Deno NetAdapter, a subprocess child that received its client
 * over an IPC channel (`process.on("message", (m, socket))`), and the node:net
 * NetAdapter under Bun.
 *
 * The connection owns the socket until `handle.release()` gives it away: after
 * a hand-off the parent's copy of the fd is destroyed without a FIN (`end()`
 * would half-close the client's connection, which the child still serves) and
 * no close is reported, since the client did not go away.
 */

import type net from "node:net";
import type { AcceptedConnection, RemoteAddress } from "../../core/adapter.ts";
import { unmappedText } from "../../core/auth/inet.ts";

/** `AcceptedConnection.handle` for a node:net socket. */
export interface NodeSocketHandle {
  readonly kind: "node-socket";
  readonly socket: net.Socket;
  /** Drops this process's copy of the socket after a hand-off, silently. */
  release(): void;
}

export function isNodeSocketHandle(x: unknown): x is NodeSocketHandle {
  return typeof x === "object" && x !== null && (x as { kind?: unknown }).kind === "node-socket";
}

/**
 * Every chunk a node:net socket reads is a buffer of its own (64 KiB under
 * Deno), garbage once passed on, and Deno's collector takes such buffers
 * back late: a bare node:net server that read 64 MB grew by 65 MiB of RSS
 * (61 MiB of ArrayBuffers), by 33 MiB with a full collection after every
 * 8 MiB. So where the runtime exposes `gc()` (`--expose-gc`, which the Deno
 * launcher gives its children: a backend that relays a huge COPY from its
 * client) this process runs one after every READ_COLLECT_BYTES read by all
 * its sockets. Bun's Bun.gc is not used here: Bun's servers read through
 * Bun's own sockets, and a full collection of its main thread, whose heap
 * counts PGlite's memory, costs far more.
 */
const READ_COLLECT_BYTES = 8 * 1024 * 1024;
const exposedGc = (globalThis as { gc?: () => void }).gc;
const collectRead: (() => void) | null = typeof exposedGc === "function" ? exposedGc : null;
let readSinceCollect = 0;

export class NodeSocketConnection implements AcceptedConnection {
  readonly remote: RemoteAddress;
  readonly handle: NodeSocketHandle;
  onClose: (() => void) | null = null;

  #socket: net.Socket;
  #onData: ((chunk: Uint8Array) => void) | null = null;
  // Chunks that arrived while nobody listened (resume() before onData).
  #queued: Uint8Array[] = [];
  #released = false;
  #closed = false;

  constructor(socket: net.Socket, remote: RemoteAddress) {
    this.#socket = socket;
    this.remote = remote;
    this.handle = {
      kind: "node-socket",
      socket,
      release: () => {
        this.#released = true;
        socket.destroy();
      },
    };
    // Paused before a "data" listener exists, so that adding one does not
    // start the flow: bytes stay in the kernel until the server resumes.
    socket.pause();
    socket.on("data", (chunk: Uint8Array) => {
      const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      if (collectRead !== null && (readSinceCollect += bytes.length) >= READ_COLLECT_BYTES) {
        readSinceCollect = 0;
        collectRead();
      }
      if (this.#onData === null) this.#queued.push(bytes);
      else this.#onData(bytes);
    });
    // Errors (ECONNRESET...) are followed by "close"; that is what we report.
    socket.on("error", () => {});
    socket.on("close", () => {
      if (this.#released || this.#closed) return;
      this.#closed = true;
      this.onClose?.();
    });
  }

  get onData(): ((chunk: Uint8Array) => void) | null {
    return this.#onData;
  }

  set onData(fn: ((chunk: Uint8Array) => void) | null) {
    this.#onData = fn;
    while (fn !== null && this.#queued.length > 0 && this.#onData === fn) fn(this.#queued.shift()!);
  }

  resume(): void {
    this.#socket.resume();
  }

  pause(): void {
    this.#socket.pause();
  }

  write(bytes: Uint8Array): boolean {
    if (this.#socket.destroyed) return true;
    return this.#socket.write(bytes);
  }

  drained(): Promise<void> {
    const socket = this.#socket;
    if (!socket.writableNeedDrain || socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        socket.off("drain", done);
        socket.off("close", done);
        resolve();
      };
      socket.on("drain", done);
      socket.on("close", done);
    });
  }

  end(): void {
    this.#socket.end();
  }

  destroy(): void {
    this.#socket.destroy();
  }
}

/** The remote address of a node:net socket; unix peers are named by the listening path. */
export function nodeRemote(socket: net.Socket, unixPath: string | null): RemoteAddress {
  if (unixPath !== null) return { family: "unix", path: unixPath };
  return {
    family: "tcp",
    address: unmappedText(socket.remoteAddress ?? ""),
    port: socket.remotePort ?? 0,
    ...(socket.localAddress !== undefined
      ? { local: { address: unmappedText(socket.localAddress), port: socket.localPort ?? 0 } }
      : {}),
  };
}

/**
 * A node:net socket behind a connection handle: ours (NodeSocketHandle), or
 * a bare net.Socket as other node:net NetAdapters in the tree carry it.
 */
export function nodeSocketOf(
  handle: unknown,
): { socket: net.Socket; release: () => void } | null {
  if (isNodeSocketHandle(handle)) return { socket: handle.socket, release: handle.release };
  const bare = handle as { destroy?: unknown; _handle?: unknown } | null;
  if (
    typeof bare === "object" && bare !== null && typeof bare.destroy === "function" &&
    "_handle" in bare
  ) {
    return { socket: bare as net.Socket, release: () => (bare.destroy as () => void).call(bare) };
  }
  return null;
}
