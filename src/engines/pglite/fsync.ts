/**
 * Durability: Postgres's fsync and fdatasync made real inside PGlite.
 *
 * With `fsync` on (PostgreSQL's default; never for memory://) Postgres runs
 * without PGlite's `-F` (`durableStart`), and the `__syscall_fdatasync` and
 * `fd_sync` imports, which PGlite's glue answers without syncing anything,
 * call fdatasync(2)/fsync(2) on the real file behind a NODEFS stream
 * (`wrapSyncImports`). The WAL's own fdatasync, one per commit, is deferred
 * to a WalFlusher and done off PGlite's thread so that concurrent commits
 * share one (walflush.ts: group commit); every other change to the data
 * directory waits for it first, so the WAL still reaches the disk before
 * the data it covers.
 *
 * Owns no state: the flusher is the caller's (instance.ts), and a failure
 * reaches Postgres as the syscall's error, which PANICs it, as it must.
 */

import { fdatasyncSync, fsyncSync } from "node:fs";
import type { WalFlusher } from "./walflush.ts";

/** The part of Emscripten's FS the sync hooks use. */
export interface EmscriptenFs {
  getStream(fd: number): EmscriptenStream | null | undefined;
  isFile(mode: number): boolean;
}
/** Emscripten's NODEFS: its streams' operations identify them. */
export interface NodeFs {
  readonly stream_ops: unknown;
  /** The host path of a node of NODEFS. */
  realPath(node: unknown): string;
}
interface EmscriptenStream {
  readonly nfd?: number;
  /** The path in Emscripten's file system (PGDATA's files are under /pglite/data). */
  readonly path?: string;
  readonly stream_ops?: unknown;
  readonly node?: { readonly mode: number };
}

const BOOL_ON = new Set(["on", "true", "yes", "1", "t", "y", "tru", "ye"]);

/**
 * Whether Postgres fsyncs, and the settings it starts with. PostgreSQL's
 * `fsync` (default on): on starts PGlite without its `-F` (which forces
 * fsync off) and with `-c fsync=on`, and makes the sync imports real. A
 * memory:// cluster has nothing to make durable: always off there, as `-F`.
 */
export function durableStart(
  dataDir: string,
  given: Readonly<Record<string, string>>,
): { durable: boolean; settings: Record<string, string> } {
  const memory = dataDir.startsWith("memory://");
  const asked = given["fsync"];
  const durable = !memory && (asked === undefined || BOOL_ON.has(asked.trim().toLowerCase()));
  const settings = { ...given };
  delete settings["fsync"];
  if (durable) settings["fsync"] = "on";
  return { durable, settings };
}

/** WASI errno values (Emscripten's errno numbering). */
const WASI_ERRNO: Readonly<Record<string, number>> = {
  EBADF: 8,
  EDQUOT: 19,
  EINVAL: 28,
  EIO: 29,
  ENOSPC: 51,
  EROFS: 69,
};
const WASI_EIO = 29;

function errnoOf(e: unknown): number {
  const code = (e as { code?: unknown } | null)?.code;
  return (typeof code === "string" ? WASI_ERRNO[code] : undefined) ?? WASI_EIO;
}

/**
 * Makes Postgres's fsync and fdatasync real. PGlite's Emscripten glue
 * answers `__syscall_fdatasync` with success without doing anything, and
 * `fd_sync` (fsync) calls the stream's own `fsync`, which NODEFS does not
 * have. A NODEFS stream carries the real file descriptor (`nfd`), so the
 * hooks call fdatasync(2)/fsync(2) on it. A directory is fsynced too (what
 * makes a new or renamed WAL segment's name durable); its failure is
 * ignored, as PostgreSQL ignores EBADF/EINVAL for directories. Other
 * streams (MEMFS, devices) keep the glue's behaviour. A failure on a file
 * reaches Postgres as the syscall's error: Postgres PANICs, as it must
 * (after a failed fsync the kernel may have dropped the dirty pages), and
 * the engine's crash handling restarts from the WAL.
 *
 * The fdatasync of a WAL segment (`issue_xlog_fsync`, every commit's) is
 * the exception: it is deferred to `flusher` (group commit). So that the
 * WAL still reaches the disk before the data it covers, every other change
 * to the data directory first makes the deferred WAL durable (see
 * walflush.ts): writes to files outside pg_wal, truncates, renames,
 * unlinks, fallocate, and the creation of a file.
 */
export function wrapSyncImports(
  env: Record<string, unknown>,
  fsOf: () => { fs: EmscriptenFs; nodefs: NodeFs } | null,
  flusher: WalFlusher,
): void {
  const streamOf = (
    fd: number,
  ): { stream: EmscriptenStream; nodefs: NodeFs; fs: EmscriptenFs } | null => {
    const found = fsOf();
    if (found === null) return null;
    let stream: EmscriptenStream | null | undefined;
    try {
      stream = found.fs.getStream(fd);
    } catch {
      return null;
    }
    if (
      stream === null || stream === undefined || typeof stream.nfd !== "number" ||
      stream.stream_ops !== found.nodefs.stream_ops
    ) return null;
    return { stream, nodefs: found.nodefs, fs: found.fs };
  };
  const wrap = (name: string, sync: (nfd: number) => void, negative: boolean) => {
    const original = env[name] as ((fd: number) => number) | undefined;
    if (typeof original !== "function") throw new Error(`PGlite does not import "${name}"`);
    const deferWal = name === "__syscall_fdatasync";
    env[name] = (fd: number) => {
      const found = streamOf(fd);
      if (found === null) return original(fd);
      const { stream, fs, nodefs } = found;
      const file = stream.node !== undefined && fs.isFile(stream.node.mode);
      const path = stream.path ?? "";
      if (deferWal && file && isWalSegment(path)) {
        const code = flusher.defer(nodefs.realPath(stream.node), walName(path));
        if (code === null) return 0;
        const errno = WASI_ERRNO[code] ?? WASI_EIO;
        return negative ? -errno : errno;
      }
      try {
        sync(stream.nfd!);
      } catch (e) {
        if (!file) return 0;
        const errno = errnoOf(e);
        return negative ? -errno : errno;
      }
      return 0;
    };
  };
  // A syscall answers -errno; a WASI call answers errno.
  wrap("__syscall_fdatasync", fdatasyncSync, true);
  wrap("fd_sync", fsyncSync, false);

  // WAL before data: what must wait for the deferred WAL fdatasync.
  const before = (
    name: string,
    negative: boolean,
    applies: (...a: number[]) => boolean,
  ) => {
    const original = env[name] as ((...a: number[]) => number) | undefined;
    if (typeof original !== "function") throw new Error(`PGlite does not import "${name}"`);
    env[name] = (...a: number[]) => {
      if (flusher.pending && applies(...a) && !flusher.force()) {
        return negative ? -WASI_EIO : WASI_EIO;
      }
      return original(...a);
    };
  };
  const dataFile = (fd: number) => {
    const found = streamOf(fd);
    return found !== null && !isWalSegment(found.stream.path ?? "");
  };
  before("fd_write", false, dataFile);
  before("fd_pwrite", false, dataFile);
  before("__syscall_ftruncate64", true, () => true);
  before("__syscall_truncate64", true, () => true);
  before("__syscall_fallocate", true, () => true);
  before("__syscall_renameat", true, () => true);
  before("__syscall_unlinkat", true, () => true);
  before("__syscall_openat", true, (_dirfd, _path, flags) => ((flags ?? 0) & O_CREAT) !== 0);
}

/** O_CREAT in Emscripten's (musl's) numbering. */
const O_CREAT = 0o100;

/** Whether an Emscripten path names a file in pg_wal (a segment, not archive_status). */
function isWalSegment(path: string): boolean {
  const at = path.lastIndexOf("/pg_wal/");
  return at >= 0 && path.indexOf("/", at + 8) < 0;
}

/** A WAL file's name as Postgres's messages give it (relative to the data directory). */
function walName(path: string): string {
  return path.slice(path.lastIndexOf("/pg_wal/") + 1);
}
