/**
 * The cluster image: a PGlite data directory exactly as PGlite's initdb
 * leaves it (bootstrap superuser "postgres", trust, no password), cleanly
 * shut down, kept as a tar (tar.ts). initdb in WASM takes about 10 s;
 * unpacking the image takes a fraction of a second, so `pgts init` and
 * every memory:// engine start from a copy of it.
 *
 * Where it lives, first found wins:
 * - an image registered by the compiled binary (src/bin/embedded.ts; made
 *   by scripts/build), which carries the PGlite it was made with;
 * - the cache: `$PGTS_CACHE_DIR`, else `$XDG_CACHE_HOME/pgts`, else
 *   `~/.cache/pgts`, one file per PGlite version and image format,
 *   `pglite-<version>-image<format>.tar` (40 MB: kept uncompressed,
 *   since gunzip alone would cost 0.3 s of every start). It is made on first use, in a
 *   scratch directory beside it and renamed into place, so a reader never
 *   sees half an image and two first uses at once both succeed. The cache,
 *   not node_modules: node_modules may be read-only and a binary has none.
 *
 * `PGTS_CLUSTER_IMAGE=off` turns images off: every cluster runs PGlite's
 * initdb itself, as before images existed. What makes a new cluster
 * different from the image (the superuser's name and password) is applied
 * by cluster.ts after the copy. This module never opens a cluster that is
 * in use; it only reads and writes the image and unpacks it into an empty
 * directory.
 */

import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { gunzipSync, gzipSync } from "node:zlib";
import { MemoryFS, PGlite } from "@electric-sql/pglite";
import { pgliteAssetOptions } from "./assets.ts";
import { packTar, type TarEntry, unpackTar } from "./tar.ts";
import {
  isWalSegment,
  newSystemIdentifier,
  setSegmentSystemIdentifier,
  systemIdentifier,
  withSystemIdentifier,
} from "./controlfile.ts";

/** pg_control, whose system identifier every unpacked copy gets anew. */
const CONTROL_FILE = "global/pg_control";

/** Bumped whenever what an image holds changes, so an old cached one is not used. */
export const IMAGE_FORMAT = 1;

/** An image's bytes (a tar, or a gzipped one) or the path of a file holding them. */
export type ImageSource = string | Uint8Array;

let registered: ImageSource | null = null;

/** Makes this realm use `source` as the cluster image (the compiled binary's embedded one). */
export function registerClusterImage(source: ImageSource): void {
  if (typeof source !== "string" && !(source instanceof Uint8Array)) {
    throw new TypeError("cluster image must be a path or a Uint8Array");
  }
  registered = source;
}

/** Whether images are used at all (`PGTS_CLUSTER_IMAGE=off` turns them off). */
export function imagesEnabled(): boolean {
  return (process.env["PGTS_CLUSTER_IMAGE"] ?? "").toLowerCase() !== "off";
}

/** The directory cached images live in. */
export function imageCacheDir(): string {
  const env = process.env;
  if (env["PGTS_CACHE_DIR"]) return env["PGTS_CACHE_DIR"];
  if (env["XDG_CACHE_HOME"]) return join(env["XDG_CACHE_HOME"], "pgts");
  const home = env["HOME"] || homedir();
  return home ? join(home, ".cache", "pgts") : join(tmpdir(), "pgts-cache");
}

let version: string | null | undefined;

/**
 * The installed PGlite's version, from the package.json beside its module;
 * null where there is none (a compiled binary, which carries its image).
 */
function pgliteVersion(): string | null {
  if (version !== undefined) return version;
  try {
    const entry = fileURLToPath(import.meta.resolve("@electric-sql/pglite"));
    const pkg = join(dirname(entry), "..", "package.json");
    const parsed = JSON.parse(readFileSync(pkg, "utf8")) as { version?: unknown };
    version = typeof parsed.version === "string" ? parsed.version : null;
  } catch {
    version = null;
  }
  return version;
}

/** Where the cache keeps the image for the installed PGlite; null when its version is unknown. */
export function cachedImagePath(): string | null {
  const v = pgliteVersion();
  return v === null ? null : join(imageCacheDir(), `pglite-${v}-image${IMAGE_FORMAT}.tar`);
}

/** The image to use, or null when none exists yet (or images are off). */
export function findClusterImage(): ImageSource | null {
  if (!imagesEnabled()) return null;
  if (registered !== null) return registered;
  const path = cachedImagePath();
  return path !== null && existsSync(path) ? path : null;
}

/** Entries of the directory tree under `root`, parents before children, names sorted. */
function* treeEntries(root: string, prefix = ""): Generator<TarEntry> {
  for (const name of readdirSync(join(root, prefix)).sort()) {
    const rel = prefix === "" ? name : `${prefix}/${name}`;
    const path = join(root, rel);
    const st = statSync(path);
    const mtime = Math.floor(st.mtimeMs / 1000);
    if (st.isDirectory()) {
      yield { name: rel, type: "directory", mode: 0o700, mtime, data: new Uint8Array(0) };
      yield* treeEntries(root, rel);
    } else if (st.isFile()) {
      yield { name: rel, type: "file", mode: 0o600, mtime, data: readFileSync(path) };
    }
  }
}

/**
 * Makes the cached image: PGlite's initdb in a scratch directory, a clean
 * shutdown, then the directory packed and renamed into place. Returns its
 * path. Takes about as long as initdb.
 */
export async function buildClusterImage(): Promise<string> {
  const path = cachedImagePath();
  if (path === null) throw new Error("cannot tell the installed PGlite's version");
  mkdirSync(dirname(path), { recursive: true });
  const scratch = mkdtempSync(`${path}.build-`);
  try {
    const data = join(scratch, "data");
    const db = await PGlite.create({ dataDir: data, ...(await pgliteAssetOptions()) });
    await db.close();
    if (!existsSync(join(data, "PG_VERSION"))) throw new Error("PGlite's initdb made no cluster");
    const tmp = join(scratch, "image.tar");
    writeFileSync(tmp, packTar(treeEntries(data)));
    renameSync(tmp, path);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return path;
}

/** The image as a tar: read, and gunzipped when it is gzipped (the binary's embedded one). */
export function imageTar(source: ImageSource): Uint8Array<ArrayBuffer> {
  const bytes = typeof source === "string" ? readFileSync(source) : source;
  const tar = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
  return tar.buffer instanceof ArrayBuffer ? tar as Uint8Array<ArrayBuffer> : new Uint8Array(tar);
}

/** The image as a gzipped tar (what scripts/build embeds in the binary). */
export function gzipImage(source: ImageSource): Uint8Array {
  return gzipSync(imageTar(source), { level: 9 });
}

/**
 * Unpacks the image into `dir` (created 0700 if missing; must be empty),
 * with a system identifier of its own, as initdb would give it: a new one,
 * or `systemIdentifier` (the databases of one pgts cluster share theirs).
 */
export function unpackClusterImage(
  source: ImageSource,
  dir: string,
  options: { systemIdentifier?: bigint } = {},
): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const made = new Set([dir]);
  const entries = [...unpackTar(imageTar(source))];
  const id = retag(entries, options.systemIdentifier ?? newSystemIdentifier());
  for (const e of entries) {
    if (e.name.split("/").includes("..") || e.name.startsWith("/")) {
      throw new Error(`cluster image entry "${e.name}" is outside the data directory`);
    }
    const path = join(dir, e.name);
    const parent = e.type === "directory" ? path : dirname(path);
    if (!made.has(parent)) {
      mkdirSync(parent, { recursive: true, mode: 0o700 });
      made.add(parent);
    }
    if (e.type === "file") writeFileSync(path, id.get(e.name) ?? e.data, { mode: 0o600 });
  }
}

/**
 * The files that name the cluster's system identifier, with `id` instead:
 * pg_control (and its CRC) and the WAL segments' long page headers, which
 * recovery checks against pg_control.
 */
function retag(entries: readonly TarEntry[], id: bigint): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  const control = entries.find((e) => e.name === CONTROL_FILE);
  if (control === undefined) return out;
  const old = systemIdentifier(control.data);
  out.set(CONTROL_FILE, withSystemIdentifier(control.data, id));
  for (const e of entries) {
    if (e.type === "file" && isWalSegment(e.name)) {
      const data = e.data.slice(0, 8192);
      setSegmentSystemIdentifier(data, old, id);
      out.set(e.name, concatHead(data, e.data));
    }
  }
  return out;
}

/** `data` with its first bytes replaced by `head`. */
function concatHead(head: Uint8Array, data: Uint8Array): Uint8Array {
  const out = data.slice();
  out.set(head, 0);
  return out;
}

/** Where PGlite keeps its data directory inside its Emscripten filesystem. */
const PGDATA = "/pglite/data";

interface EmscriptenFS {
  mkdirTree(path: string, mode?: number): void;
  writeFile(path: string, data: Uint8Array, opts: { canOwn: boolean }): void;
}

/**
 * A memory:// filesystem that starts as a copy of the image, for PGlite's
 * `fs` option. PGlite's own `loadDataDir` parses the tar and copies each
 * file twice; here each file of the freshly read tar is handed to MEMFS as
 * it is (`canOwn`: MEMFS keeps the view, copying only when a file grows),
 * so 40 MB load in the time it takes to read them. PGlite then finds
 * PG_VERSION and starts instead of running initdb.
 */
class ImageMemoryFS extends MemoryFS {
  readonly #tar: Uint8Array;

  constructor(tar: Uint8Array) {
    super();
    this.#tar = tar;
  }

  override async initialSyncFs(): Promise<void> {
    await super.initialSyncFs();
    const pg = (this as unknown as { pg?: { Module: { FS: EmscriptenFS } } }).pg;
    if (pg === undefined) throw new Error("the image filesystem was not initialised by PGlite");
    const fs = pg.Module.FS;
    fs.mkdirTree(PGDATA, 0o700);
    const entries = [...unpackTar(this.#tar)];
    const id = retag(entries, newSystemIdentifier());
    for (const e of entries) {
      const path = `${PGDATA}/${e.name}`;
      if (e.type === "directory") fs.mkdirTree(path, 0o700);
      else fs.writeFile(path, id.get(e.name) ?? e.data, { canOwn: true });
    }
  }
}

/**
 * PGlite's `fs` for a memory:// cluster that starts from the image. The tar
 * is read (or gunzipped) afresh, or copied, so that no two engines ever
 * share the bytes MEMFS writes into.
 */
export function imageMemoryFs(source: ImageSource): MemoryFS {
  const tar = imageTar(source);
  return new ImageMemoryFS(tar === source ? tar.slice() : tar);
}
