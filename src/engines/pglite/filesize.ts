/**
 * File sizes for Emscripten's NODEFS without an fstat(2) per lseek.
 *
 * Postgres asks for a relation's size with lseek(fd, 0, SEEK_END) (md.c's
 * mdnblocks, through FileSize): the planner does for every table of every
 * statement. NODEFS answers SEEK_END with `fs.fstatSync`, about 10 µs under
 * Deno (a tenth of a select-only statement), 1–2 µs under Bun. The engine
 * is the only writer of its files (one opener per data directory,
 * cluster.ts), so a size once read stays right as long as every write,
 * truncate and extension made through NODEFS updates it: writes raise it,
 * a truncate (setattr with a size) forgets it. Sizes are kept per file
 * node, which every descriptor of the file shares.
 *
 * Never changes what Postgres sees; a file written by anyone else while the
 * engine has it open would be seen with a stale size, as it would be
 * corrupted by that writer anyway.
 */

type Op = (...args: never[]) => unknown;

/** What of Emscripten's NODEFS and FS this needs. */
export interface NodeFsOps {
  readonly stream_ops: Record<string, Op>;
  readonly node_ops: Record<string, Op>;
}
export interface EmscriptenFsModes {
  isFile(mode: number): boolean;
}

interface Stream {
  readonly node: { readonly mode: number };
  readonly position: number;
}

const SEEK_END = 2;

/** Wraps NODEFS's operations in place (its streams share these objects). */
export function cacheFileSizes(nodefs: NodeFsOps, fs: EmscriptenFsModes): void {
  const sizes = new WeakMap<object, number>();
  const ops = nodefs.stream_ops;
  const llseek = ops["llseek"] as (s: Stream, offset: number, whence: number) => number;
  const write = ops["write"] as (
    s: Stream,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position?: number,
  ) => number;
  const streamSetattr = ops["setattr"] as
    | ((s: Stream, attr: { size?: number }) => void)
    | undefined;
  const nodeSetattr = nodefs.node_ops["setattr"] as
    | ((node: object, attr: { size?: number }) => void)
    | undefined;
  if (typeof llseek !== "function" || typeof write !== "function") {
    throw new TypeError("NODEFS has no llseek or write to wrap");
  }

  ops["llseek"] = ((stream: Stream, offset: number, whence: number) => {
    if (whence !== SEEK_END || !fs.isFile(stream.node.mode)) {
      return llseek(stream, offset, whence);
    }
    let size = sizes.get(stream.node);
    if (size === undefined) {
      size = llseek(stream, 0, SEEK_END);
      sizes.set(stream.node, size);
    }
    // A negative result is NODEFS's EINVAL: let it raise that.
    return offset + size < 0 ? llseek(stream, offset, whence) : offset + size;
  }) as Op;
  ops["write"] = ((
    stream: Stream,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position?: number,
  ) => {
    const written = write(stream, buffer, offset, length, position);
    const size = sizes.get(stream.node);
    if (size !== undefined) {
      const end = (typeof position === "number" ? position : stream.position) + written;
      if (end > size) sizes.set(stream.node, end);
    }
    return written;
  }) as Op;
  if (typeof streamSetattr === "function") {
    ops["setattr"] = ((stream: Stream, attr: { size?: number }) => {
      if (attr.size !== undefined) sizes.delete(stream.node);
      return streamSetattr(stream, attr);
    }) as Op;
  }
  if (typeof nodeSetattr === "function") {
    nodefs.node_ops["setattr"] = ((node: object, attr: { size?: number }) => {
      if (attr.size !== undefined) sizes.delete(node);
      return nodeSetattr(node, attr);
    }) as Op;
  }
}
