/**
 * node:fs pieces of server logging for Bun and Deno: the stderr sink that
 * `configureLogging` uses by default, and the LogFileSystem the log collector
 * writes its files through. Writes are synchronous so that a line logged just
 * before a process exits (a FATAL, a PANIC) is not lost in a buffer.
 */

import {
  closeSync,
  fstatSync,
  mkdirSync,
  openSync,
  renameSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import type { LineSink } from "../../core/log.ts";
import type { LogFile, LogFileSystem } from "../../core/syslogger.ts";

const encoder = new TextEncoder();

/** Writes formatted lines to file descriptor 2. */
export const stderrSink: LineSink = (text) => {
  const bytes = encoder.encode(text);
  let off = 0;
  while (off < bytes.length) off += writeSync(2, bytes, off);
};

class NodeLogFile implements LogFile {
  #fd: number;
  #size: number;

  constructor(path: string, truncate: boolean) {
    this.#fd = openSync(path, truncate ? "w" : "a", 0o600);
    this.#size = fstatSync(this.#fd).size;
  }

  get size(): number {
    return this.#size;
  }

  write(text: string): void {
    const bytes = encoder.encode(text);
    let off = 0;
    while (off < bytes.length) off += writeSync(this.#fd, bytes, off);
    this.#size += bytes.length;
  }

  close(): void {
    closeSync(this.#fd);
  }
}

export const nodeLogFiles: LogFileSystem = {
  mkdir(path) {
    mkdirSync(path, { recursive: true, mode: 0o700 });
  },
  open(path, options) {
    return new NodeLogFile(path, options.truncate);
  },
  replaceFile(path, text) {
    const tmp = `${path}.tmp`;
    writeFileSync(tmp, text, { mode: 0o600 });
    renameSync(tmp, path);
  },
};
