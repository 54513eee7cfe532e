/**
 * The extensions the PGlite package ships (its `dist/*.tar.gz` bundles:
 * uuid-ossp, pgcrypto, hstore, citext, pg_trgm, ltree, cube, earthdistance,
 * fuzzystrmatch, tablefunc, unaccent, btree_gin, btree_gist, amcheck, …)
 * and pgvector's (`vector`, from @electric-sql/pglite-pgvector, built for
 * PGlite 0.5.15 and checked on pgts's 0.5.16), put into a running engine's
 * file system.
 *
 * PGlite loads a bundle only when it is named in `extensions` at create.
 * A bundle is the extension's control and SQL files and its shared library;
 * Postgres reads the first from share/extension when CREATE EXTENSION runs
 * and dlopens the library (compiled then, synchronously) when a function of
 * it is first called, so writing the files into the file system later is
 * enough. pgts does that for every bundle at once, on the first need: an
 * input that names an extension (CREATE or ALTER EXTENSION,
 * pg_available_extensions), or an engine start whose database has one
 * created. Measured: ~4.3 MB of files from 1.5 MB of gzip, 40 libraries,
 * well under a second once per engine (pgvector adds ~0.1 MB of gzip);
 * statements that never name an extension pay nothing.
 *
 * Runs on the thread that runs PGlite. A compiled binary has no packages
 * to read: scripts/build embeds every bundle `shippedBundlePaths` names, and
 * the binary's entry registers them with its assets (src/bin/embedded.ts,
 * assets.ts's `extensionBundles`), which take the packages' place.
 */

import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { registeredPgliteAssets } from "./assets.ts";
import { unpackTar } from "./tar.ts";
import { HEAP_MAX_PAGES, shareMemoryImports } from "./sharedheap.ts";

/** What of PGlite's Emscripten module this needs. */
interface PgliteModule {
  readonly WASM_PREFIX: string;
  readonly FS: {
    analyzePath(path: string): { exists: boolean };
    mkdirTree(path: string): void;
    writeFile(path: string, data: Uint8Array): void;
  };
}

/** The packages whose `dist` directories hold extension bundles. */
const BUNDLE_PACKAGES = ["@electric-sql/pglite", "@electric-sql/pglite-pgvector"];

/** Every bundle's path: the registered ones (a compiled binary's), else the packages'. */
function bundlePaths(): readonly string[] {
  return registeredPgliteAssets()?.extensionBundles ?? shippedBundlePaths();
}

/** Every bundle the installed packages ship; none where there are no packages. */
export function shippedBundlePaths(): string[] {
  const paths: string[] = [];
  for (const pkg of BUNDLE_PACKAGES) {
    try {
      const dir = dirname(fileURLToPath(import.meta.resolve(pkg)));
      for (const f of readdirSync(dir).filter((f) => f.endsWith(".tar.gz")).sort()) {
        paths.push(join(dir, f));
      }
    } catch {
      // Not installed, or not a file (a compiled binary's bundle).
    }
  }
  return paths;
}

/**
 * Writes every shipped bundle's files under PGlite's install prefix.
 * Returns how many bundles were loaded. With `sharedHeap` (sharedheap.ts),
 * each library's memory import is made shared as Postgres's own is: a
 * library that imports a non-shared memory does not link against it.
 */
export function loadExtensionBundles(db: unknown, options: { sharedHeap?: boolean } = {}): number {
  const mod = (db as { mod?: PgliteModule }).mod;
  if (mod === undefined) return 0;
  let n = 0;
  for (const file of bundlePaths()) {
    for (const e of unpackTar(gunzipSync(readFileSync(file)))) {
      if (e.type !== "file") continue;
      const path = `${mod.WASM_PREFIX}/${e.name}`;
      const parent = path.slice(0, path.lastIndexOf("/"));
      if (!mod.FS.analyzePath(parent).exists) mod.FS.mkdirTree(parent);
      const data = options.sharedHeap === true && path.endsWith(".so")
        ? shareMemoryImports(e.data, HEAP_MAX_PAGES)
        : e.data;
      mod.FS.writeFile(path, data);
    }
    n++;
  }
  return n;
}
