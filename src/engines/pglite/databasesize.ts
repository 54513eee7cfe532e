/**
 * pg_database_size() of the other databases. Each database is a PGlite
 * cluster of its own (pg_database.ts), and an engine's pg_database lists
 * the others as rows without files, so PostgreSQL's function found no
 * directory for them and answered NULL: `select datname,
 * pg_database_size(datname) from pg_database` (a monitoring query, pgAdmin's
 * dashboard) had a size only for the database it ran in.
 *
 * pgts's pg_database_size(oid) and pg_database_size(name) run PostgreSQL's
 * first (its privilege check: CONNECT or pg_read_all_stats, 42501; its
 * 3D000 for a name no database has) and then, for another database, sum
 * what PostgreSQL's db_dir_size would: the size of every entry of that
 * database's directory inside its cluster (`DIR/<dir>/base/5`, read
 * through the data directory's mount at /pgts, backupfs.ts); one with no
 * cluster yet (template0, made when first copied) keeps PostgreSQL's
 * answer. Which cluster is which database comes from pgts's list
 * (`global/pgts_database.json`); in each engine its own database is oid 5,
 * and "postgres" has that database's oid (pg_database.ts), so those two are
 * swapped back.
 */

import { argDatum, wrapBuiltin } from "./backends.ts";
import { DATADIR_MOUNT } from "./backupfs.ts";
import type { WasmTools } from "./wasmtools.ts";

/** pg_proc OIDs of pg_database_size(name) and pg_database_size(oid). */
const F_PG_DATABASE_SIZE_NAME = 2168;
const F_PG_DATABASE_SIZE_OID = 2324;
/** The oid of the database an engine serves, in its own cluster (PGlite's "postgres"). */
const SERVED_OID = 5;
/** FunctionCallInfoBaseData.isnull. */
const FCINFO_ISNULL = 16;
/** pgts's list of databases, as the data directory has it (dbregistry.ts). */
const DATABASE_LIST = `${DATADIR_MOUNT}/global/pgts_database.json`;

/** The part of Emscripten's FS the sizes need (paths inside the engine). */
export interface SizeFs {
  readFile(path: string, options: { encoding: "utf8" }): string;
  readdir(path: string): string[];
  stat(path: string): { size: number };
}

interface ListedDatabase {
  readonly oid: number;
  readonly name: string;
  readonly dir: string;
}

interface SizeExports {
  palloc(size: number): number;
}

/**
 * Wraps both pg_database_size functions for an engine whose cluster is
 * `ownDir` of the data directory ("pglite", "base/16384").
 */
export function installDatabaseSizes(tools: WasmTools, fs: SizeFs, ownDir: string): void {
  const ex = tools.ex as unknown as SizeExports & typeof tools.ex;
  if (typeof ex.palloc !== "function") throw new Error("PGlite does not export palloc");
  const list = (): readonly ListedDatabase[] => {
    try {
      const parsed = JSON.parse(fs.readFile(DATABASE_LIST, { encoding: "utf8" })) as {
        databases?: ListedDatabase[];
      };
      return parsed.databases ?? [];
    } catch {
      return [];
    }
  };
  /**
   * The int8 Datum of database `d`'s size (by reference on wasm32); the
   * builtin's `result` when it has no directory yet.
   */
  const answer = (fcinfo: number, d: ListedDatabase, result: number): number => {
    const bytes = directorySize(fs, `${DATADIR_MOUNT}/${d.dir}/base/${SERVED_OID}`);
    if (bytes === null) return result;
    if (bytes === 0) {
      tools.view().setUint8(fcinfo + FCINFO_ISNULL, 1);
      return 0;
    }
    const p = ex.palloc(8);
    tools.view().setBigInt64(p, BigInt(bytes), true);
    tools.view().setUint8(fcinfo + FCINFO_ISNULL, 0);
    return p;
  };
  wrapBuiltin(tools, F_PG_DATABASE_SIZE_OID, (fcinfo, builtin) => {
    const oid = argDatum(tools, fcinfo, 0) >>> 0;
    const result = builtin(fcinfo);
    if (oid === SERVED_OID) return result;
    const all = list();
    const own = all.find((d) => d.dir === ownDir);
    if (own === undefined) return result;
    const target = all.find((d) => d.oid === (oid === own.oid ? SERVED_OID : oid));
    return target === undefined ? result : answer(fcinfo, target, result);
  });
  wrapBuiltin(tools, F_PG_DATABASE_SIZE_NAME, (fcinfo, builtin) => {
    const name = tools.readCString(argDatum(tools, fcinfo, 0));
    const result = builtin(fcinfo);
    const all = list();
    const own = all.find((d) => d.dir === ownDir);
    if (own === undefined || own.name === name) return result;
    const target = all.find((d) => d.name === name);
    return target === undefined ? result : answer(fcinfo, target, result);
  });
}

/** The sum of the sizes of the entries of `dir` (db_dir_size), or null when it does not exist. */
function directorySize(fs: SizeFs, dir: string): number | null {
  let names: string[];
  try {
    names = fs.readdir(dir);
  } catch {
    return null;
  }
  let total = 0;
  for (const name of names) {
    if (name === "." || name === "..") continue;
    try {
      total += fs.stat(`${dir}/${name}`).size;
    } catch {
      // Removed since the listing (a dropped relation), as db_dir_size skips ENOENT.
    }
  }
  return total;
}
