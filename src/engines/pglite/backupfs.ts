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
 */

import { basename, dirname } from "node:path";

/** Where the data directory is mounted inside every engine. */
export const DATADIR_MOUNT = "/pgts";

interface EmscriptenFsMount {
  mkdirTree(path: string): void;
  mount(type: unknown, options: { root: string }, mountpoint: string): unknown;
}

/**
 * Mounts the data directory that holds `clusterDir` (a database's PGlite
 * cluster) at DATADIR_MOUNT; nothing for a cluster outside pgts's layout.
 */
export function mountDataDirectory(
  fs: EmscriptenFsMount,
  nodefs: unknown,
  clusterDir: string,
): void {
  const parent = dirname(clusterDir);
  const dataDir = basename(clusterDir) === "pglite"
    ? parent
    : basename(parent) === "base" && /^\d+$/.test(basename(clusterDir))
    ? dirname(parent)
    : null;
  if (dataDir === null) return;
  fs.mkdirTree(DATADIR_MOUNT);
  fs.mount(nodefs, { root: dataDir }, DATADIR_MOUNT);
}
