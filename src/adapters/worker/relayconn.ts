/**
 * The client connection of a child that cannot own a socket (a Web Worker):
 * the postmaster keeps the real Connection and relays bytes both ways with
 * transferred buffers (postMessage with the buffer in the transfer list),
 * which measured about half the round trip of transferred streams when this
 * adapter was written; scripts/bench/children.ts measures each adapter's
 * hand-off latency as it is now. Both halves live here: `relayTo`
 * in the postmaster, `RelayedConnection` in the worker.
 *
 * Flow control is by credit: the worker counts bytes it wrote that the
 * postmaster has not yet handed to the kernel ("written" acks), so `write`
 * returns false and `drained()` waits just as on a real socket.
 */

import type { Connection, RemoteAddress } from "../../core/adapter.ts";
import type { ToChild, ToParent } from "../child/envelope.ts";

/** Bytes in flight after which `write` asks the caller to wait. */
const HIGH_WATER_MARK = 64 * 1024;

type Post<T> = (message: T, transfer?: Transferable[]) => void;

/** Gives a chunk its own ArrayBuffer so it can be transferred without copying twice. */
function ownBuffer(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  if (
    bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength &&
    bytes.buffer instanceof ArrayBuffer
  ) return bytes as Uint8Array<ArrayBuffer>;
  return bytes.slice();
}

/** Worker side: a Connection whose socket is in the postmaster. */
export class RelayedConnection implements Connection {
  readonly remote: RemoteAddress;
  onClose: (() => void) | null = null;
  #post: Post<ToParent>;
  #onData: ((chunk: Uint8Array) => void) | null = null;
  #queued: Uint8Array[] = [];
  #inflight = 0;
  #drainWaiters: Array<() => void> = [];
  #closed = false;

  constructor(remote: RemoteAddress, post: Post<ToParent>) {
    this.remote = remote;
    this.#post = post;
  }

  get onData(): ((chunk: Uint8Array) => void) | null {
    return this.#onData;
  }

  set onData(fn: ((chunk: Uint8Array) => void) | null) {
    this.#onData = fn;
    while (fn !== null && this.#queued.length > 0 && this.#onData === fn) fn(this.#queued.shift()!);
  }

  resume(): void {
    if (!this.#closed) this.#post({ t: "resume" });
  }

  pause(): void {
    if (!this.#closed) this.#post({ t: "pause" });
  }

  write(bytes: Uint8Array): boolean {
    if (this.#closed) return true;
    // A copy: the caller may reuse its buffer, and ours is transferred away.
    const own = bytes.slice();
    this.#inflight += own.byteLength;
    this.#post({ t: "write", b: own }, [own.buffer]);
    return this.#inflight < HIGH_WATER_MARK;
  }

  drained(): Promise<void> {
    if (this.#inflight === 0 || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  end(): void {
    if (!this.#closed) this.#post({ t: "end" });
  }

  destroy(): void {
    if (!this.#closed) this.#post({ t: "destroy" });
  }

  /** Feeds relay traffic from the postmaster. */
  deliver(message: ToChild): void {
    switch (message.t) {
      case "data":
        if (this.#onData === null) this.#queued.push(message.b);
        else this.#onData(message.b);
        return;
      case "written":
        this.#inflight -= message.n;
        if (this.#inflight <= 0) {
          this.#inflight = 0;
          for (const resolve of this.#drainWaiters.splice(0)) resolve();
        }
        return;
      case "closed":
        if (this.#closed) return;
        this.#closed = true;
        for (const resolve of this.#drainWaiters.splice(0)) resolve();
        this.onClose?.();
        return;
      default:
        return;
    }
  }
}

/**
 * Postmaster side: serves `client` for a worker. Returns the handler for the
 * worker's relay envelopes and a function that closes the client once the
 * worker is gone (destroying it unless the worker already ended it).
 */
export function relayTo(
  client: Connection,
  post: Post<ToChild>,
): { handle(message: ToParent): void; finish(): void } {
  let ended = false;
  let gone = false;
  client.onData = (chunk) => {
    const own = ownBuffer(chunk);
    post({ t: "data", b: own }, [own.buffer]);
  };
  client.onClose = () => {
    gone = true;
    post({ t: "closed" });
  };
  return {
    handle(message) {
      switch (message.t) {
        case "write": {
          const n = message.b.byteLength;
          if (client.write(message.b)) post({ t: "written", n });
          else void client.drained().then(() => !gone && post({ t: "written", n }));
          return;
        }
        case "pause":
          client.pause();
          return;
        case "resume":
          client.resume();
          return;
        case "end":
          ended = true;
          client.end();
          return;
        case "destroy":
          ended = true;
          client.destroy();
          return;
        default:
          return;
      }
    },
    finish() {
      gone = true;
      client.onData = null;
      client.onClose = null;
      if (!ended) client.destroy();
    },
  };
}
