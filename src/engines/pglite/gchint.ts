/**
 * A hint to the runtime's garbage collector while a huge answer or a huge
 * COPY streams through the engine. Every chunk on its way is a buffer of
 * its own (PGlite's writes copied out of its heap, the Worker's 256 kB
 * answers, the client's reads), garbage as soon as it has been passed on.
 * Bun's collector ran seldom while a COPY streamed (not traced why;
 * perhaps the Worker's answers, transferred from another thread, are not
 * counted), and the server's RSS grew by hundreds of MiB (+246 MiB for a
 * 200 MB COPY TO STDOUT, against PostgreSQL's +18), all of it garbage that
 * went only some seconds after the COPY. So each thread the data passes
 * through asks for a collection after every `PGTS_GC_HINT_MB` MiB
 * (default 16; 0: never). Under Deno there is no such call without
 * `--expose-gc`, and nothing is done.
 *
 * It decides nothing and holds nothing: a count and a call.
 */

import process from "node:process";

/** MiB between two hints; 0 turns them off. */
const HINT_BYTES = hintBytes(process.env["PGTS_GC_HINT_MB"]);

function hintBytes(value: string | undefined): number {
  const mib = value === undefined || value === "" ? 16 : Number(value);
  return Number.isFinite(mib) && mib > 0 ? mib * 1024 * 1024 : 0;
}

/** Bun.gc(false): a collection without waiting for it to finish. */
const collect: (() => void) | null = (() => {
  const bun = (globalThis as { Bun?: { gc?: (force: boolean) => void } }).Bun;
  const gc = bun?.gc;
  if (typeof gc === "function") return () => gc.call(bun, false);
  const exposed = (globalThis as { gc?: () => void }).gc;
  return typeof exposed === "function" ? () => exposed() : null;
})();

/** Counts bytes streamed through one thread and hints a collection every HINT_BYTES. */
export class CollectorHint {
  #bytes = 0;

  /** `n` more bytes went through. */
  note(n: number): void {
    if (HINT_BYTES === 0 || collect === null) return;
    this.#bytes += n;
    if (this.#bytes < HINT_BYTES) return;
    this.#bytes = 0;
    collect();
  }
}
