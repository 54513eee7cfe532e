/**
 * The cluster's pg_database: which databases a pgts cluster has, where each
 * one's PGlite cluster lives, and what every engine's own pg_database must
 * show of them.
 *
 * PostgreSQL keeps pg_database in global/, shared by every database. pgts
 * runs one PGlite cluster per database (dbengines.ts), each with a
 * pg_database of its own, so the list is kept here, in
 * `global/pgts_database.json` under the data directory, written whole and
 * renamed into place (a crash leaves the old list or the new one). Each
 * engine's pg_database is made a mirror of it (`mirrorSql`): the row of the
 * database the engine serves carries that database's name and attributes,
 * and every other database has a row of its own, without files, so that
 * `\l` and `select datname from pg_database` list the cluster in every
 * database.
 *
 * A database's PGlite cluster is `pglite/` for "postgres" (the directory
 * `pgts init` made) and `base/<oid>` for the others. Inside it the served
 * database is the copy's oid 5 (initdb's "postgres"); `inner` is the name
 * its row has there, which PGlite opens it by, until the mirror renames it.
 *
 * This module reads and writes the list and builds SQL; it never opens an
 * engine and never copies a cluster.
 */

import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { ENGINE_DIR } from "../../core/datadir.ts";
import { quoteLiteral } from "./wire.ts";

export interface DatabaseEntry {
  /** pg_database.oid, as other databases show it. */
  readonly oid: number;
  name: string;
  /** The owner's role name. */
  owner: string;
  /** The database's PGlite cluster, relative to the data directory. */
  readonly dir: string;
  /** The served database's name inside its cluster: what PGlite is opened with. */
  inner: string;
  isTemplate: boolean;
  allowConn: boolean;
  connLimit: number;
  /**
   * Its privileges (datacl as text) as its own engine keeps them, for the
   * other engines' rows; null or absent: the defaults.
   */
  acl?: string | null;
  /**
   * Its comment (COMMENT ON DATABASE) as its own engine keeps it, for the
   * other engines' rows (pg_shdescription); null: none; absent: not known
   * (a list from before comments were kept), and the other engines' rows
   * are left as they are.
   */
  comment?: string | null;
  /**
   * Made by CREATE DATABASE and not opened since: its cluster is a copy of
   * the template's, whose served row has the template's privileges, and
   * the first mirror gives it PostgreSQL's defaults instead (datacl NULL).
   */
  fresh?: boolean;
  /**
   * Its pg_shdepend's rows per role (oid → count: what it has that DROP
   * ROLE in another database must not leave behind, pg_shdepend.ts) when
   * its engine last closed; absent while it is open or not known.
   */
  dependents?: Readonly<Record<string, number>>;
}

/** A database's row as one engine's pg_database shows it. */
export interface DatabaseShown {
  /** Its owner's name (null: no such role). */
  readonly owner: string | null;
  /** Its privileges, item by item (aclitem as text each); null: the defaults. */
  readonly items: readonly string[] | null;
}

interface CatalogFile {
  readonly nextOid: number;
  readonly databases: DatabaseEntry[];
}

/** Where the list lives under the data directory. */
export const DATABASE_FILE = "global/pgts_database.json";

/** initdb's databases: oids as PostgreSQL gives them. */
const POSTGRES_OID = 5;
const TEMPLATE1_OID = 1;
const TEMPLATE0_OID = 4;

/**
 * initdb's comment on "postgres". Every database's cluster is a copy of
 * one whose served database is initdb's "postgres", so another database's
 * own row has it until the first mirror puts that database's own in its
 * place (`ownComment`, `mirrorSql`).
 */
const POSTGRES_COMMENT = "default administrative connection database";

/** initdb's comments on its databases, by oid. */
const INITDB_COMMENTS: ReadonlyMap<number, string> = new Map([
  [POSTGRES_OID, POSTGRES_COMMENT],
  [TEMPLATE1_OID, "default template for new databases"],
  [TEMPLATE0_OID, "unmodifiable empty database"],
]);

/**
 * The comment database `entry` has, from the one its engine reads on its
 * own row: initdb's "postgres" comment on another database is a copy's
 * leftover, in place of initdb's own comment on it (template1's,
 * template0's) or of none.
 */
export function ownComment(entry: DatabaseEntry, read: string | null): string | null {
  if (read !== POSTGRES_COMMENT || entry.oid === POSTGRES_OID) return read;
  return INITDB_COMMENTS.get(entry.oid) ?? null;
}
/** FirstNormalObjectId: oids of databases CREATE DATABASE makes start here. */
const FIRST_NORMAL_OID = 16384;

export class DatabaseCatalog {
  readonly #file: string;
  #nextOid: number;
  #byName = new Map<string, DatabaseEntry>();

  private constructor(file: string, data: CatalogFile) {
    this.#file = file;
    this.#nextOid = data.nextOid;
    for (const d of data.databases) this.#byName.set(d.name, d);
  }

  /**
   * The data directory's list; a cluster made before there was one gets
   * initdb's three databases: "postgres" (its existing PGlite cluster,
   * served as `served`), template1 and template0 (made from the image when
   * first needed).
   */
  static load(dataDir: string, init: { owner: string; served: string }): DatabaseCatalog {
    const file = join(dataDir, DATABASE_FILE);
    if (existsSync(file)) {
      return new DatabaseCatalog(file, JSON.parse(readFileSync(file, "utf8")) as CatalogFile);
    }
    const base = { owner: init.owner, connLimit: -1 };
    const catalog = new DatabaseCatalog(file, {
      nextOid: FIRST_NORMAL_OID,
      databases: [
        {
          ...base,
          oid: POSTGRES_OID,
          name: "postgres",
          dir: ENGINE_DIR,
          inner: init.served,
          isTemplate: false,
          allowConn: true,
        },
        {
          ...base,
          oid: TEMPLATE1_OID,
          name: "template1",
          dir: `base/${TEMPLATE1_OID}`,
          inner: "postgres",
          isTemplate: true,
          allowConn: true,
        },
        {
          ...base,
          oid: TEMPLATE0_OID,
          name: "template0",
          dir: `base/${TEMPLATE0_OID}`,
          inner: "postgres",
          isTemplate: true,
          allowConn: false,
        },
      ],
    });
    catalog.save();
    return catalog;
  }

  get(name: string): DatabaseEntry | undefined {
    return this.#byName.get(name);
  }

  list(): DatabaseEntry[] {
    return [...this.#byName.values()].sort((a, b) => a.oid - b.oid);
  }

  /** A new database's entry (not yet in the list): its oid and cluster directory. */
  allocate(name: string, from: Omit<DatabaseEntry, "oid" | "name" | "dir">): DatabaseEntry {
    const oid = this.#nextOid++;
    return { ...from, oid, name, dir: `base/${oid}` };
  }

  add(entry: DatabaseEntry): void {
    this.#byName.set(entry.name, entry);
    this.save();
  }

  remove(name: string): void {
    this.#byName.delete(name);
    this.save();
  }

  rename(entry: DatabaseEntry, to: string): void {
    this.#byName.delete(entry.name);
    entry.name = to;
    this.#byName.set(to, entry);
    this.save();
  }

  /** Writes the list whole and renames it into place. */
  save(): void {
    mkdirSync(join(this.#file, ".."), { recursive: true, mode: 0o700 });
    const tmp = `${this.#file}.tmp`;
    const data: CatalogFile = { nextOid: this.#nextOid, databases: this.list() };
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeFileSync(fd, JSON.stringify(data, null, 1) + "\n");
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.#file);
    const dir = openSync(join(this.#file, ".."), "r");
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }
}

/**
 * SQL that makes on the served database (its row `servedOid`) the change
 * another engine's SQL made on its copy of the row (DROP OWNED revoking a
 * role's privileges): the items `removed` go, the items `added` come (each
 * aclitem as text), whatever else its privileges became meanwhile. Runs as
 * the bootstrap superuser (dbregistry.ts).
 */
export function servedAclChangeSql(
  servedOid: number,
  removed: readonly string[],
  added: readonly string[],
): string {
  const list = (xs: readonly string[]) =>
    `ARRAY[${xs.map(quoteLiteral).join(", ")}]::pg_catalog.text[]`;
  const items = "pg_catalog.unnest(coalesce(datacl, pg_catalog.acldefault('d', datdba)))";
  return [
    "BEGIN READ WRITE",
    "SET LOCAL allow_system_table_mods = on",
    "UPDATE pg_catalog.pg_database SET datacl = (SELECT coalesce(pg_catalog.array_agg(i)," +
    ` '{}') FROM ${items} i WHERE NOT (i::pg_catalog.text = ANY(${list(removed)}))` +
    ` AND NOT (i::pg_catalog.text = ANY(${list(added)})))` +
    ` || ${list(added)}::pg_catalog.aclitem[] WHERE oid = ${servedOid}`,
    "COMMIT",
  ].join(";\n");
}

/**
 * SQL that makes an engine's pg_database the mirror of `databases`, for
 * the engine serving `served` (its row keeps its own oid, `servedOid`).
 * The served database shows its own oid, so another database whose oid it
 * is shows `served`'s instead: every oid stays unique in every engine.
 * Runs as the bootstrap superuser, in one transaction.
 *
 * Only rows that differ are written: another database's row that is not
 * already the one wanted, every column compared (those copied from the
 * served row too), is deleted and inserted again; the served row is
 * updated only when its attributes differ. When every row matches, which
 * is every start after the first, the transaction writes nothing, so it
 * has no transaction id, no commit record and no WAL flush.
 */
export function mirrorSql(
  databases: readonly DatabaseEntry[],
  served: DatabaseEntry,
  servedOid: number,
): string {
  const owner = (name: string) =>
    `coalesce((select oid from pg_catalog.pg_authid where rolname = ${quoteLiteral(name)}), 10)`;
  const attrs = (d: DatabaseEntry) =>
    `datname = ${quoteLiteral(d.name)}, datdba = ${
      owner(d.owner)
    }, datistemplate = ${d.isTemplate}, ` +
    `datallowconn = ${d.allowConn}, datconnlimit = ${d.connLimit}`;
  const servedAttrs = `(${quoteLiteral(served.name)}::pg_catalog.name, ${
    owner(served.owner)
  }, ${served.isTemplate}, ${served.allowConn}, ${served.connLimit})`;
  // A database CREATE DATABASE made: the template's privileges give way to the defaults.
  const fresh = served.fresh === true;
  const others = databases.filter((d) => d !== served).map((d) => {
    const oid = d.oid === servedOid ? served.oid : d.oid;
    const acl = d.acl == null ? "NULL" : quoteLiteral(d.acl);
    return `(${oid}::pg_catalog.oid, ${quoteLiteral(d.name)}::pg_catalog.name, ${
      owner(d.owner)
    }, ${d.isTemplate}, ${d.allowConn}, ${d.connLimit}, ${acl}::pg_catalog.text)`;
  });
  // Another database's row as it should be: its own attributes, the rest
  // copied from the served row `s`.
  const wanted = `(VALUES ${others.join(", ")}) AS o(oid, name, dba, tmpl, conn, lim, acl),` +
    ` pg_catalog.pg_database s WHERE s.oid = ${servedOid}`;
  const columns = "oid, datname, datdba, encoding, datlocprovider, datistemplate, datallowconn," +
    " dathasloginevt, datconnlimit, datfrozenxid, datminmxid, dattablespace, datcollate," +
    " datctype, datlocale, daticurules, datcollversion, datacl";
  const values = "o.oid, o.name, o.dba, s.encoding, s.datlocprovider, o.tmpl, o.conn, false," +
    " o.lim, s.datfrozenxid, s.datminmxid, s.dattablespace, s.datcollate, s.datctype," +
    " s.datlocale, s.daticurules, s.datcollversion," +
    // A role an item names may be gone (DROP ROLE checks only its own database).
    " CASE WHEN pg_catalog.pg_input_is_valid(o.acl, 'pg_catalog.aclitem[]')" +
    " THEN o.acl::pg_catalog.aclitem[] END";
  const sql = [
    // READ WRITE: the backend may still carry the last session's
    // default_transaction_read_only (its settings stay until the next
    // session's are put on), and this runs in every engine.
    "BEGIN READ WRITE",
    "SET LOCAL allow_system_table_mods = on",
    // First, so that the served row's new name is free.
    `DELETE FROM pg_catalog.pg_database d WHERE d.oid <> ${servedOid}` +
    (others.length === 0 ? "" : ` AND NOT EXISTS (SELECT FROM ${wanted}` +
      ` AND (${columns.split(", ").map((c) => `d.${c}`).join(", ")})` +
      ` IS NOT DISTINCT FROM (${values}))`),
    `UPDATE pg_catalog.pg_database SET ${attrs(served)}${fresh ? ", datacl = NULL" : ""}` +
    ` WHERE oid = ${servedOid}` +
    ` AND (datname, datdba, datistemplate, datallowconn, datconnlimit)` +
    ` IS DISTINCT FROM ${servedAttrs}` +
    (fresh ? " OR oid = " + servedOid + " AND datacl IS NOT NULL" : ""),
  ];
  if (others.length > 0) {
    sql.push(
      `INSERT INTO pg_catalog.pg_database (${columns}) SELECT ${values} FROM ${wanted}` +
        " AND NOT EXISTS (SELECT FROM pg_catalog.pg_database d WHERE d.oid = o.oid)",
    );
  }
  // Comments: the served row's is its engine's own, but a database
  // CREATE DATABASE made has none (PostgreSQL copies no comment), and
  // initdb's "postgres" comment is only a copy's leftover on another's row
  // (template1 and template0 get initdb's own instead).
  const isDatabase = "classoid = 'pg_catalog.pg_database'::pg_catalog.regclass";
  const initdb = INITDB_COMMENTS.get(served.oid);
  const leftover = `objoid = ${servedOid} AND ${isDatabase}` +
    ` AND description = ${quoteLiteral(POSTGRES_COMMENT)}`;
  if (fresh) {
    sql.push(
      `DELETE FROM pg_catalog.pg_shdescription WHERE objoid = ${servedOid} AND ${isDatabase}`,
      // Nor the template's ALTER DATABASE … SET and ALTER ROLE … IN
      // DATABASE values (PostgreSQL's are keyed by the template's oid).
      "DELETE FROM pg_catalog.pg_db_role_setting WHERE setdatabase <> 0",
    );
  } else if (initdb === undefined) {
    sql.push(`DELETE FROM pg_catalog.pg_shdescription WHERE ${leftover}`);
  } else if (served.oid !== POSTGRES_OID) {
    sql.push(
      `UPDATE pg_catalog.pg_shdescription SET description = ${
        quoteLiteral(initdb)
      } WHERE ${leftover}`,
    );
  }
  // The other databases' rows show their comments as the list keeps them.
  const comments = databases.filter((d) => d !== served && d.comment !== undefined).map((d) =>
    `(${d.oid === servedOid ? served.oid : d.oid}::pg_catalog.oid, ${
      d.comment == null ? "NULL" : quoteLiteral(d.comment)
    }::pg_catalog.text)`
  );
  if (comments.length > 0) {
    const w = `(VALUES ${comments.join(", ")}) AS w(o, d)`;
    sql.push(
      `DELETE FROM pg_catalog.pg_shdescription s USING ${w} WHERE s.objoid = w.o` +
        ` AND s.${isDatabase} AND s.description IS DISTINCT FROM w.d`,
      "INSERT INTO pg_catalog.pg_shdescription (objoid, classoid, description)" +
        ` SELECT w.o, 'pg_catalog.pg_database'::pg_catalog.regclass, w.d FROM ${w}` +
        " WHERE w.d IS NOT NULL AND NOT EXISTS (SELECT FROM pg_catalog.pg_shdescription s" +
        ` WHERE s.objoid = w.o AND s.${isDatabase})`,
    );
  }
  // Each database's owner is a dependency of the database, in every
  // engine (PostgreSQL's one pg_shdepend has it): DROP ROLE of an owner is
  // refused wherever it runs ("owner of database …", 2BP01), and REASSIGN
  // OWNED gives the database away (dbregistry.ts carries that to the list).
  // The bootstrap superuser is pinned: no row, as in PostgreSQL.
  const shared = "s.dbid = 0 AND s.classid = 'pg_catalog.pg_database'::pg_catalog.regclass" +
    " AND s.objsubid = 0";
  const owned = `${shared} AND s.deptype = 'o'`;
  // And every role its privileges name, grantee or grantor, other than the
  // owner, PUBLIC and the bootstrap superuser (PostgreSQL's
  // updateAclDependencies): "privileges for database …", and DROP OWNED
  // revokes them.
  const named = "pg_catalog.pg_database d CROSS JOIN LATERAL pg_catalog.aclexplode(d.datacl) x" +
    " CROSS JOIN LATERAL (VALUES (x.grantee), (x.grantor)) r(oid)" +
    " WHERE r.oid NOT IN (0, 10) AND r.oid <> d.datdba";
  sql.push(
    `DELETE FROM pg_catalog.pg_shdepend s WHERE ${shared} AND s.deptype = 'a' AND NOT EXISTS` +
      ` (SELECT FROM ${named} AND d.oid = s.objid AND r.oid = s.refobjid)`,
    "INSERT INTO pg_catalog.pg_shdepend (dbid, classid, objid, objsubid, refclassid, refobjid," +
      " deptype) SELECT DISTINCT 0, 'pg_catalog.pg_database'::pg_catalog.regclass, d.oid, 0," +
      ` 'pg_catalog.pg_authid'::pg_catalog.regclass, r.oid, 'a' FROM ${named} AND NOT EXISTS` +
      ` (SELECT FROM pg_catalog.pg_shdepend s WHERE ${shared} AND s.deptype = 'a'` +
      // In the databases' order: DROP ROLE's DETAIL lists them as it finds them.
      " AND s.objid = d.oid AND s.refobjid = r.oid) ORDER BY 3, 6",
  );
  sql.push(
    `DELETE FROM pg_catalog.pg_shdepend s WHERE ${owned} AND NOT EXISTS (SELECT FROM` +
      " pg_catalog.pg_database d WHERE d.oid = s.objid AND d.datdba = s.refobjid AND d.datdba <> 10)",
    "INSERT INTO pg_catalog.pg_shdepend (dbid, classid, objid, objsubid, refclassid, refobjid," +
      " deptype) SELECT 0, 'pg_catalog.pg_database'::pg_catalog.regclass, d.oid, 0," +
      " 'pg_catalog.pg_authid'::pg_catalog.regclass, d.datdba, 'o' FROM pg_catalog.pg_database d" +
      ` WHERE d.datdba <> 10 AND NOT EXISTS (SELECT FROM pg_catalog.pg_shdepend s WHERE ${owned}` +
      " AND s.objid = d.oid)",
  );
  sql.push("COMMIT");
  return sql.join(";\n");
}
