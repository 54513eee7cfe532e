/**
 * The Worker that runs PostgreSQL 18's pg_dump compiled to WASM
 * (@electric-sql/pglite-tools) against a server it cannot open itself.
 *
 * pglite-tools exports one function, `pgDump({ pg, args })`. Its libpq has
 * no sockets: `send` and `recv` call back into JavaScript, where `send`
 * hands the bytes to `pg.execProtocolRawStream(bytes, { onRawData })` and
 * `recv` returns whatever `onRawData` delivered so far, or 0, which libpq
 * takes for "server closed the connection". Everything runs synchronously
 * inside `callMain`. So the `pg` given here is a bridge: it passes libpq's
 * bytes to the main thread (which owns the real connection to the server)
 * and blocks in Atomics.wait until the server has sent every answer libpq
 * will read before its next write (see wire.ts), then hands them over at
 * once. `pg.query`/`pg.exec` (pgDump's SHOW/SET search_path and DEALLOCATE
 * ALL around the dump, meant for an in-process PGlite) are no-ops: the
 * dump's session is the bridged connection, gone when pg_dump ends.
 *
 * pgDump always appends `-U postgres --inserts -j 1 -f /tmp/out.sql` and
 * reads that file back as a UTF-8 string (which a binary custom-format
 * archive does not survive: it stops at the first NUL byte). So the output
 * is taken at the WASI layer instead: this Worker wraps
 * WebAssembly.instantiate and, for the file descriptor opened on
 * /tmp/out.sql, turns `fd_write`/`fd_seek` into positioned writes sent to the
 * main thread (the in-memory file stays empty); stderr (fd 2) is forwarded as
 * it is written, so pg_dump's messages and -v progress appear live. This
 * Worker is dedicated to one dump, so patching its global WebAssembly touches
 * nothing else.
 */

import process from "node:process";
import { pgDump } from "@electric-sql/pglite-tools";
import type { PGlite } from "@electric-sql/pglite";
import { OwedAnswers } from "./wire.ts";
import {
  type DumpStart,
  type FromDumpWorker,
  OUTPUT_PATH,
  STATE_DATA,
  STATE_EMPTY,
  STATE_EOF,
} from "./protocol.ts";

const scope = globalThis as unknown as {
  postMessage(message: FromDumpWorker, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent<DumpStart>) => void) | null;
};

const post = (message: FromDumpWorker, transfer: Transferable[] = []) =>
  scope.postMessage(message, transfer);

// ---- output capture at the WASI layer ------------------------------------

const WASI_ESPIPE = 70;

interface OutputState {
  seekable: boolean;
  fd: number;
  pos: number;
  size: number;
  /** Written bytes not sent yet (stdio writes 1 kB at a time): a run starting at `pendingPos`. */
  pending: Uint8Array;
  pendingLen: number;
  pendingPos: number;
}

/** Output is sent to the main thread in runs of up to this many bytes. */
const OUTPUT_RUN = 256 * 1024;

const output: OutputState = {
  seekable: false,
  fd: -1,
  pos: 0,
  size: 0,
  pending: new Uint8Array(OUTPUT_RUN),
  pendingLen: 0,
  pendingPos: 0,
};

/** Sends the pending run of output (before a seek, a wait for the server, the end). */
function flushOutput(): void {
  if (output.pendingLen === 0) return;
  const bytes = output.pending.slice(0, output.pendingLen);
  post({ type: "output", pos: output.pendingPos, bytes }, [bytes.buffer]);
  output.pendingLen = 0;
}

function writeOutput(bytes: Uint8Array): void {
  const contiguous = output.pendingPos + output.pendingLen === output.pos;
  if (!contiguous || output.pendingLen + bytes.length > OUTPUT_RUN) flushOutput();
  if (output.pendingLen === 0) output.pendingPos = output.pos;
  if (bytes.length > OUTPUT_RUN) {
    const copy = bytes.slice();
    post({ type: "output", pos: output.pos, bytes: copy }, [copy.buffer]);
  } else {
    output.pending.set(bytes, output.pendingLen);
    output.pendingLen += bytes.length;
  }
  output.pos += bytes.length;
  output.size = Math.max(output.size, output.pos);
}

type Imports = Record<string, Record<string, unknown>>;
type Fn = (...args: never[]) => unknown;

function withOverrides(
  target: Record<string, unknown>,
  overrides: Record<string, unknown>,
): Record<string, unknown> {
  // The module's import objects may be Proxies resolving symbols lazily:
  // wrap rather than copy.
  return new Proxy(target, {
    get: (t, name, receiver) =>
      typeof name === "string" && name in overrides
        ? overrides[name]
        : Reflect.get(t, name, receiver),
  });
}

function hookImports(imports: Imports): Imports {
  const env = imports.env;
  const wasi = imports.wasi_snapshot_preview1;
  if (env === undefined || wasi === undefined) return imports;
  const memory = () => (Reflect.get(env, "memory") as WebAssembly.Memory).buffer;
  const original = (from: Record<string, unknown>, name: string) =>
    Reflect.get(from, name) as Fn as (...args: unknown[]) => number;
  const openat = original(env, "__syscall_openat");
  const fdWrite = original(wasi, "fd_write");
  const fdSeek = original(wasi, "fd_seek");
  const fdClose = original(wasi, "fd_close");

  const cString = (ptr: number): string => {
    const heap = new Uint8Array(memory());
    let end = ptr;
    while (heap[end] !== 0 && end < heap.length) end++;
    return new TextDecoder().decode(heap.subarray(ptr, end));
  };
  const gather = (iov: number, iovcnt: number): Uint8Array<ArrayBuffer> => {
    const view = new DataView(memory());
    const parts: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < iovcnt; i++) {
      const base = view.getUint32(iov + i * 8, true);
      const len = view.getUint32(iov + i * 8 + 4, true);
      parts.push(new Uint8Array(memory(), base, len));
      total += len;
    }
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.length;
    }
    return bytes;
  };

  return {
    ...imports,
    env: withOverrides(env, {
      __syscall_openat: (dirfd: number, path: number, flags: number, varargs: number) => {
        const fd = openat(dirfd, path, flags, varargs);
        if (fd >= 0 && cString(path) === OUTPUT_PATH) {
          output.fd = fd;
          output.pos = 0;
          output.size = 0;
        }
        return fd;
      },
    }),
    wasi_snapshot_preview1: withOverrides(wasi, {
      fd_write: (fd: number, iov: number, iovcnt: number, nwritten: number) => {
        if (fd !== output.fd && fd !== 2) return fdWrite(fd, iov, iovcnt, nwritten);
        const bytes = gather(iov, iovcnt);
        // Set before the buffer is transferred (a transferred view has length 0).
        new DataView(memory()).setUint32(nwritten, bytes.length, true);
        if (fd === 2) post({ type: "stderr", bytes }, [bytes.buffer]);
        else writeOutput(bytes);
        return 0;
      },
      fd_seek: (fd: number, offset: bigint, whence: number, newOffset: number) => {
        if (fd !== output.fd) return fdSeek(fd, offset, whence, newOffset);
        // Standard output is a pipe to pg_dump: an archive written there has no
        // data offsets in its table of contents, as when pg_dump writes to a pipe.
        if (!output.seekable) return WASI_ESPIPE;
        flushOutput();
        const base = whence === 0 ? 0 : whence === 1 ? output.pos : output.size;
        output.pos = base + Number(offset);
        new DataView(memory()).setBigInt64(newOffset, BigInt(output.pos), true);
        return 0;
      },
      fd_close: (fd: number) => {
        if (fd === output.fd) {
          flushOutput();
          output.fd = -1;
        }
        return fdClose(fd);
      },
    }),
  };
}

const instantiate = WebAssembly.instantiate.bind(WebAssembly) as (
  source: unknown,
  imports?: Imports,
) => Promise<unknown>;
(WebAssembly as unknown as { instantiate: unknown }).instantiate = (
  source: unknown,
  imports?: Imports,
) => instantiate(source, imports === undefined ? imports : hookImports(imports));

// ---- the bridge to the server ---------------------------------------------

function bridge(control: Int32Array, data: Uint8Array) {
  const owed = new OwedAnswers();
  let eof = false;

  /** The next bytes from the server, waiting for them; null once it hung up. */
  const receive = (): Uint8Array | null => {
    if (eof) return null;
    flushOutput();
    post({ type: "want" });
    Atomics.wait(control, 0, STATE_EMPTY);
    const state = Atomics.load(control, 0);
    if (state === STATE_EOF) {
      eof = true;
      return null;
    }
    if (state !== STATE_DATA) throw new Error(`unexpected bridge state ${state}`);
    const bytes = data.slice(0, Atomics.load(control, 1));
    Atomics.store(control, 0, STATE_EMPTY);
    return bytes;
  };

  return {
    query: () => Promise.resolve({ rows: [{ search_path: "public" }], fields: [] }),
    exec: () => Promise.resolve([]),
    execProtocolRawStream(
      bytes: Uint8Array,
      options: { onRawData: (bytes: Uint8Array) => void },
    ): Promise<void> {
      const copy = bytes.slice();
      owed.sent(copy);
      post({ type: "send", bytes: copy }, [copy.buffer]);
      const chunks: Uint8Array[] = [];
      let total = 0;
      while (owed.waiting) {
        const chunk = receive();
        if (chunk === null) break;
        owed.received(chunk);
        chunks.push(chunk);
        total += chunk.length;
      }
      if (total > 0) {
        const all = chunks.length === 1 ? chunks[0] as Uint8Array : new Uint8Array(total);
        if (chunks.length > 1) {
          let at = 0;
          for (const c of chunks) {
            all.set(c, at);
            at += c.length;
          }
        }
        options.onRawData(all);
      }
      return Promise.resolve();
    },
  };
}

scope.onmessage = async (event) => {
  const start = event.data;
  // The module takes argv[0] (pg_dump's progname, its messages' prefix and
  // fallback_application_name) from process.argv[1]: this Worker's file
  // otherwise. (find_my_exec still finds no such binary in the WASM file
  // system and says so; dump.ts drops that line.)
  process.argv[1] = "pg_dump";
  output.seekable = start.seekable;
  const pg = bridge(new Int32Array(start.control), new Uint8Array(start.data));
  try {
    await pgDump({ pg: pg as unknown as PGlite, args: start.args });
    flushOutput();
    post({ type: "done", ok: true, message: "" });
  } catch (e) {
    post({ type: "done", ok: false, message: e instanceof Error ? e.message : String(e) });
  }
};
