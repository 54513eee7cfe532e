/**
 * Where `pgts basebackup` writes: a directory of plain files (`-F plain`),
 * or one ustar archive `base.tar` (`-F tar`, gzipped to `base.tar.gz` with
 * `-z`). Files arrive in order, each announced with the size it had when it
 * was listed: a file that grew meanwhile is cut there and one that shrank is
 * padded with zeros, as pg_basebackup does; WAL replay from the backup's
 * start puts both right. At the end every plain file and directory is
 * fsynced, or the archive, unless told not to (`--no-sync`).
 */

import {
  closeSync,
  createWriteStream,
  fsyncSync,
  mkdirSync,
  openSync,
  type WriteStream,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { createGzip, type Gzip } from "node:zlib";
import { fsyncTree } from "../../engines/pglite/clustercopy.ts";
import { TAR_BLOCK, tarHeader } from "../../engines/pglite/tar.ts";

export interface BackupSink {
  directory(name: string, mode: number): Promise<void>;
  /** A file of `size` bytes, its contents from `chunks` (cut or zero-padded to `size`). */
  file(
    name: string,
    info: { mode: number; mtime: number; size: number },
    chunks: AsyncIterable<Uint8Array>,
  ): Promise<void>;
  close(): Promise<void>;
}

/** The bytes of `chunks`, exactly `size` of them. */
async function* exactly(
  chunks: AsyncIterable<Uint8Array>,
  size: number,
): AsyncGenerator<Uint8Array> {
  let left = size;
  for await (const c of chunks) {
    if (left === 0) break;
    const part = c.length > left ? c.subarray(0, left) : c;
    left -= part.length;
    yield part;
  }
  if (left > 0) yield new Uint8Array(left);
}

export class PlainSink implements BackupSink {
  readonly #root: string;
  readonly #sync: boolean;

  constructor(root: string, options: { sync: boolean }) {
    this.#root = root;
    this.#sync = options.sync;
  }

  directory(name: string, mode: number): Promise<void> {
    const path = join(this.#root, name);
    mkdirSync(path, { recursive: true, mode });
    return Promise.resolve();
  }

  async file(
    name: string,
    info: { mode: number; size: number },
    chunks: AsyncIterable<Uint8Array>,
  ): Promise<void> {
    const path = join(this.#root, name);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const fd = openSync(path, "w", info.mode);
    try {
      for await (const c of exactly(chunks, info.size)) {
        let at = 0;
        while (at < c.length) at += writeSync(fd, c, at);
      }
    } finally {
      closeSync(fd);
    }
  }

  /**
   * fsyncs every file, then every directory (deepest first, the root and
   * its parent last: fsyncTree, as a copied cluster is synced), after the
   * copy rather than file by file: by then the kernel has written most of it
   * back, and the copy never waited for the disk. The directory was empty
   * or new (checked before the copy), so the tree is what was written.
   */
  close(): Promise<void> {
    return this.#sync ? fsyncTree(this.#root) : Promise.resolve();
  }
}

export class TarSink implements BackupSink {
  readonly #file: WriteStream;
  readonly #out: WriteStream | Gzip;
  readonly #sync: boolean;
  readonly #done: Promise<void>;

  constructor(path: string, options: { gzip: boolean; sync: boolean }) {
    this.#file = createWriteStream(path, { mode: 0o600 });
    this.#sync = options.sync;
    this.#done = new Promise((resolve, reject) => {
      this.#file.on("close", resolve);
      this.#file.on("error", reject);
    });
    if (options.gzip) {
      const gz = createGzip();
      gz.pipe(this.#file);
      this.#out = gz;
    } else {
      this.#out = this.#file;
    }
  }

  async #write(bytes: Uint8Array): Promise<void> {
    if (!this.#out.write(bytes)) {
      await new Promise<void>((resolve) => this.#out.once("drain", () => resolve()));
    }
  }

  async directory(name: string, mode: number): Promise<void> {
    await this.#write(tarHeader({ name, type: "directory", mode, mtime: Date.now() / 1000 }, 0));
  }

  async file(
    name: string,
    info: { mode: number; mtime: number; size: number },
    chunks: AsyncIterable<Uint8Array>,
  ): Promise<void> {
    await this.#write(
      tarHeader({ name, type: "file", mode: info.mode, mtime: info.mtime }, info.size),
    );
    for await (const c of exactly(chunks, info.size)) await this.#write(c);
    const pad = (TAR_BLOCK - (info.size % TAR_BLOCK)) % TAR_BLOCK;
    if (pad > 0) await this.#write(new Uint8Array(pad));
  }

  async close(): Promise<void> {
    await this.#write(new Uint8Array(2 * TAR_BLOCK));
    this.#out.end();
    await this.#done;
    if (this.#sync) {
      const fd = openSync(this.#file.path as string, "r");
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
  }
}
