/**
 * The main-thread half of `pgts dump`: one real connection to the server
 * (TCP or Unix socket, through pgts's own dialers), the pg_dump Worker, and
 * the relay between them. libpq's bytes go to the server as the Worker
 * sends them; the server's bytes are queued here and copied into the shared
 * buffer whenever the Worker asks for more (it is blocked meanwhile, see
 * worker.ts). pg_dump's output arrives as positioned writes for the sink, its
 * stderr as it is written.
 */

import { dialUpstream } from "../../http/upstream.ts";
import type { Connection } from "../../core/adapter.ts";
import type { UpstreamAddress } from "../../engines/upstream/url.ts";
import {
  DATA_CAPACITY,
  type DumpStart,
  type FromDumpWorker,
  STATE_DATA,
  STATE_EOF,
} from "./protocol.ts";

/** Where the dump goes. */
export interface DumpSink {
  /** Whether `write` may be given positions out of order. */
  readonly seekable: boolean;
  write(pos: number, bytes: Uint8Array): void;
}

export interface RelayOptions {
  readonly address: UpstreamAddress;
  /** pg_dump's arguments (pglite-tools appends its own). */
  readonly args: string[];
  readonly sink: DumpSink;
  /** pg_dump's stderr, as written. */
  readonly onStderr: (text: string) => void;
  /** Each chunk libpq sends (for progress: the queries show which table is dumped). */
  readonly onSend?: (bytes: Uint8Array) => void;
}

/** Resolves with pg_dump's outcome; rejects when the server cannot be reached. */
export async function runPgDump(options: RelayOptions): Promise<{ ok: boolean; message: string }> {
  const conn: Connection = await dialUpstream(options.address);
  const control = new Int32Array(new SharedArrayBuffer(8));
  const data = new Uint8Array(new SharedArrayBuffer(DATA_CAPACITY));
  const queue: Uint8Array[] = [];
  let wanted = false;
  let hungUp = false;

  const pump = () => {
    if (!wanted) return;
    if (queue.length > 0) {
      let n = 0;
      while (queue.length > 0 && n < DATA_CAPACITY) {
        const head = queue[0] as Uint8Array;
        const take = Math.min(head.length, DATA_CAPACITY - n);
        data.set(head.subarray(0, take), n);
        n += take;
        if (take === head.length) queue.shift();
        else queue[0] = head.subarray(take);
      }
      Atomics.store(control, 1, n);
      Atomics.store(control, 0, STATE_DATA);
    } else if (hungUp) {
      Atomics.store(control, 0, STATE_EOF);
    } else {
      return;
    }
    wanted = false;
    Atomics.notify(control, 0);
  };

  conn.onData = (chunk) => {
    queue.push(chunk.slice());
    pump();
  };
  conn.onClose = () => {
    hungUp = true;
    pump();
  };
  conn.resume();

  const worker = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });
  const decoder = new TextDecoder();
  try {
    return await new Promise((resolve) => {
      worker.onmessage = (event: MessageEvent<FromDumpWorker>) => {
        const m = event.data;
        switch (m.type) {
          case "send":
            conn.write(m.bytes);
            options.onSend?.(m.bytes);
            break;
          case "want":
            wanted = true;
            pump();
            break;
          case "output":
            options.sink.write(m.pos, m.bytes);
            break;
          case "stderr":
            options.onStderr(decoder.decode(m.bytes, { stream: true }));
            break;
          case "done":
            resolve({ ok: m.ok, message: m.message });
            break;
          default: {
            const never: never = m;
            throw new TypeError(`Unknown message from the pg_dump worker ${String(never)}`);
          }
        }
      };
      worker.onerror = (event) => {
        event.preventDefault?.();
        resolve({ ok: false, message: `pg_dump worker failed: ${event.message}` });
      };
      const start: DumpStart = {
        args: options.args,
        control: control.buffer as SharedArrayBuffer,
        data: data.buffer as SharedArrayBuffer,
        seekable: options.sink.seekable,
      };
      worker.postMessage(start);
    });
  } finally {
    worker.terminate();
    conn.end();
  }
}
