/**
 * The pgts data directory as the engine sees it, for base backups.
 *
 * A PGlite backend sees only its own cluster (NODEFS mounts it at PGlite's
 * PGDATA): `DIR/pglite` for "postgres", `DIR/base/<oid>` for another
 * database (pg_database.ts). A base backup also needs the files pgts keeps
 * beside them: postgresql.conf, pg_hba.conf, pg_ident.conf, the TLS files,
 * `global/pgts_database.json`. This module mounts the whole data directory
 * at `/pgts` in the engine, so that a superuser's pg_ls_dir and
 * pg_read_binary_file reach them, as a PostgreSQL superuser's reach every
 * file of PGDATA (`pgts basebackup` reads them so, src/cli/basebackup/).
 * Nothing of pgts writes through this mount; a superuser could, as in
 * PostgreSQL (COPY … TO a file), and no more than the server's own user may.
 *
 * The same directory is mounted at its own host path too, so that the
 * engine's data_directory, config_file, hba_file and ident_file can name
 * what PostgreSQL's would (`SHOW data_directory` gives the directory of
 * `pgts start -D`, not PGlite's `/pglite/data`), and pg_hba_file_rules,
 * pg_ident_file_mappings and pg_file_settings read the files pgts reads.
 */

import { basename, dirname, join, resolve } from "node:path";
import type { WasmTools } from "./wasmtools.ts";
import { PGC_POSTMASTER, PGC_S_OVERRIDE, setConfigOption } from "./configreload.ts";
import { parseConfigFile } from "../../core/guc/parser.ts";
import { nodeConfigReader } from "../../adapters/node/config-reader.ts";

/** Where the data directory is mounted inside every engine. */
export const DATADIR_MOUNT = "/pgts";

interface EmscriptenFsMount {
  mkdirTree(path: string): void;
  mount(type: unknown, options: { root: string }, mountpoint: string): unknown;
}

/**
 * Mounts the data directory that holds `clusterDir` (a database's PGlite
 * cluster) at DATADIR_MOUNT, and at its own path where the engine's file
 * tree leaves that free. Returns the data directory when it is mounted at
 * its own path (the path the engine's settings may name), else null;
 * nothing is mounted for a cluster outside pgts's layout.
 */
export function mountDataDirectory(
  fs: EmscriptenFsMount,
  nodefs: unknown,
  clusterDir: string,
): string | null {
  const inside = clusterDirOf(clusterDir);
  if (inside === null) return null;
  const dataDir = inside === "pglite" ? dirname(clusterDir) : dirname(dirname(clusterDir));
  fs.mkdirTree(DATADIR_MOUNT);
  fs.mount(nodefs, { root: dataDir }, DATADIR_MOUNT);
  const own = resolve(dataDir);
  // PGlite's own tree (/pglite, /tmp's lock files, /dev...) keeps its
  // paths: a data directory there, or a path Emscripten refuses to mount
  // at, is reached at DATADIR_MOUNT only. Below /dev/shm, where a cluster
  // that need not outlive the machine is often put, Emscripten has only
  // empty directories of its own (/dev/shm, /dev/shm/tmp): a data
  // directory deeper than those is mounted at its own path.
  const belowShm = own.startsWith("/dev/shm/") && own !== "/dev/shm/tmp";
  if (
    own === "/" ||
    (!belowShm && RESERVED.some((r) => own === r || own.startsWith(`${r}/`)))
  ) {
    return null;
  }
  try {
    fs.mkdirTree(own);
    fs.mount(nodefs, { root: dataDir }, own);
  } catch {
    return null;
  }
  return own;
}

/**
 * Where `clusterDir` is in pgts's layout: "pglite" (the "postgres"
 * database's cluster) or "base/<oid>" (another's), relative to the data
 * directory; null for a cluster outside it (memory://, a test's own).
 */
export function clusterDirOf(clusterDir: string): string | null {
  if (clusterDir.startsWith("memory://")) return null;
  const name = basename(clusterDir);
  if (name === "pglite") return name;
  return basename(dirname(clusterDir)) === "base" && /^\d+$/.test(name) ? `base/${name}` : null;
}

/** Top-level paths of the engine's own file tree (Emscripten's and PGlite's). */
const RESERVED = ["/pglite", DATADIR_MOUNT, "/dev", "/proc", "/home/web_user", "/tmp/pglite"];

/**
 * Points the engine's data_directory, config_file, hba_file and ident_file
 * at `dataDir` (mounted at its own path by mountDataDirectory), as
 * PostgreSQL's postmaster sets them at start (SelectConfigFiles). Only the
 * settings change: PostgreSQL's DataDir, where the backend works, stays
 * PGlite's. Returns whether the engine took all four.
 */
export function showDataDirectory(tools: WasmTools, dataDir: string): boolean {
  let ok = true;
  for (
    const [name, value] of [
      ["data_directory", dataDir],
      ["config_file", join(dataDir, "postgresql.conf")],
      ["hba_file", join(dataDir, "pg_hba.conf")],
      ["ident_file", join(dataDir, "pg_ident.conf")],
    ] as const
  ) {
    try {
      const r = setConfigOption(tools, name, value, {
        context: PGC_POSTMASTER,
        source: PGC_S_OVERRIDE,
        reload: false,
      });
      if (r <= 0) ok = false;
    } catch {
      return false; // A PGlite without set_config_option: PGlite's paths stay.
    }
  }
  return ok;
}

/**
 * The settings of a PGlite cluster's own postgresql.conf (the one its
 * initdb wrote, `clusterDir/postgresql.conf`), for the engine's start as
 * `-c` settings under those pgts passes: once config_file names pgts's
 * file (showDataDirectory), no parameter's source is then a file pgts's
 * users never see (pg_settings' sourcefile), and a postmaster parameter
 * set only there (max_connections, dynamic_shared_memory_type) does not
 * read as removed from the file in pg_file_settings. Empty when the file
 * cannot be read.
 */
export function clusterFileSettings(clusterDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const { items } = parseConfigFile(join(clusterDir, "postgresql.conf"), nodeConfigReader);
  for (const item of items) out[item.name.toLowerCase()] = item.value;
  return out;
}
