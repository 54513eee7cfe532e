/**
 * The messages between `pgts dump` and its pg_dump Worker, and the layout of
 * the shared buffers the server's bytes cross in (the Worker blocks in
 * Atomics.wait on `control[0]`, the main thread fills `data` and notifies).
 */

/** The file pglite-tools' pgDump always makes pg_dump write (its `-f`). */
export const OUTPUT_PATH = "/tmp/out.sql";

/** control[0]: the Worker waits for bytes. */
export const STATE_EMPTY = 0;
/** control[0]: control[1] bytes of `data` are the server's next bytes. */
export const STATE_DATA = 1;
/** control[0]: the server hung up. */
export const STATE_EOF = 2;

/** Bytes of the server's output handed over at a time. */
export const DATA_CAPACITY = 1 << 20;

/** Main thread → Worker, once. */
export interface DumpStart {
  readonly args: string[];
  /** Int32Array(2): state, length. */
  readonly control: SharedArrayBuffer;
  readonly data: SharedArrayBuffer;
  /** Whether the output may be written out of order (a file, not a pipe). */
  readonly seekable: boolean;
}

/** Worker → main thread. */
export type FromDumpWorker =
  /** libpq's bytes for the server. */
  | { readonly type: "send"; readonly bytes: Uint8Array }
  /** libpq waits for the server's next bytes in `data`. */
  | { readonly type: "want" }
  /** pg_dump's output at a position of the output file. */
  | { readonly type: "output"; readonly pos: number; readonly bytes: Uint8Array }
  /** What pg_dump wrote to stderr. */
  | { readonly type: "stderr"; readonly bytes: Uint8Array }
  | { readonly type: "done"; readonly ok: boolean; readonly message: string };
