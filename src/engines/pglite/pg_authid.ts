/**
 * Roles are cluster-wide in PostgreSQL: pg_authid, pg_auth_members, the
 * role-wide rows of pg_db_role_setting, the roles' comments in
 * pg_shdescription and the parameters' privileges in pg_parameter_acl
 * (GRANT SET ON PARAMETER) are shared catalogs, one copy for
 * every database. pgts runs a PGlite cluster per database (dbengines.ts),
 * each with its own copy, so after a transaction that may have changed
 * roles the engine it ran on is read (`ROLES_DUMP_SQL`) and every other
 * engine's copy is made the same (`rolesSyncSql`), rows and oids alike, so
 * that an owner or a grantee is the same role in every database.
 *
 * Roles below FirstNormalObjectId other than the bootstrap superuser (10)
 * are initdb's predefined pg_* roles, the same in every copy, and are left
 * alone. This module only builds SQL; it runs as the bootstrap superuser.
 */

import { quoteLiteral } from "./wire.ts";

/**
 * The roles of an engine, as one JSON text: [pg_authid rows, pg_auth_members
 * rows, role-wide settings, the roles' comments, pg_parameter_acl rows].
 */
export const ROLES_DUMP_SQL = "select pg_catalog.json_build_array(" +
  "(select coalesce(pg_catalog.json_agg(a), '[]') from pg_catalog.pg_authid a" +
  " where a.oid >= 16384 or a.oid = 10)," +
  " (select coalesce(pg_catalog.json_agg(m), '[]') from pg_catalog.pg_auth_members m)," +
  " (select coalesce(pg_catalog.json_agg(d), '[]') from pg_catalog.pg_db_role_setting d" +
  " where d.setdatabase = 0)," +
  " (select coalesce(pg_catalog.json_agg(c), '[]') from pg_catalog.pg_shdescription c" +
  " where c.classoid = 'pg_catalog.pg_authid'::pg_catalog.regclass)," +
  " (select coalesce(pg_catalog.json_agg(p), '[]') from pg_catalog.pg_parameter_acl p))::text";

/** SQL that makes an engine's roles those of `dump` (ROLES_DUMP_SQL's text), in one transaction. */
export function rolesSyncSql(dump: string): string {
  const parts = JSON.parse(dump) as unknown[][];
  const rows = (table: string, i: number) =>
    `pg_catalog.json_populate_recordset(null::pg_catalog.${table}, ${
      quoteLiteral(JSON.stringify(parts[i] ?? []))
    })`;
  return [
    // READ WRITE: the backend may still carry the last session's
    // default_transaction_read_only (its settings stay until the next
    // session's are put on), and this runs in every engine.
    "BEGIN READ WRITE",
    "SET LOCAL allow_system_table_mods = on",
    "DELETE FROM pg_catalog.pg_auth_members",
    "DELETE FROM pg_catalog.pg_db_role_setting WHERE setdatabase = 0",
    "DELETE FROM pg_catalog.pg_authid WHERE oid >= 16384",
    "UPDATE pg_catalog.pg_authid t SET rolname = s.rolname, rolsuper = s.rolsuper," +
    " rolinherit = s.rolinherit, rolcreaterole = s.rolcreaterole, rolcreatedb = s.rolcreatedb," +
    " rolcanlogin = s.rolcanlogin, rolreplication = s.rolreplication," +
    " rolbypassrls = s.rolbypassrls, rolconnlimit = s.rolconnlimit," +
    " rolpassword = s.rolpassword, rolvaliduntil = s.rolvaliduntil" +
    ` FROM ${rows("pg_authid", 0)} s WHERE t.oid = 10 AND s.oid = 10`,
    `INSERT INTO pg_catalog.pg_authid SELECT * FROM ${rows("pg_authid", 0)} WHERE oid >= 16384`,
    `INSERT INTO pg_catalog.pg_auth_members SELECT * FROM ${rows("pg_auth_members", 1)}`,
    `INSERT INTO pg_catalog.pg_db_role_setting SELECT * FROM ${rows("pg_db_role_setting", 2)}`,
    // This database's settings of roles dropped elsewhere go with them, as DROP ROLE's do.
    "DELETE FROM pg_catalog.pg_db_role_setting WHERE setrole <> 0" +
    " AND setrole NOT IN (SELECT oid FROM pg_catalog.pg_authid)",
    "DELETE FROM pg_catalog.pg_shdescription" +
    " WHERE classoid = 'pg_catalog.pg_authid'::pg_catalog.regclass",
    `INSERT INTO pg_catalog.pg_shdescription SELECT * FROM ${rows("pg_shdescription", 3)}`,
    "DELETE FROM pg_catalog.pg_parameter_acl",
    `INSERT INTO pg_catalog.pg_parameter_acl SELECT * FROM ${rows("pg_parameter_acl", 4)}`,
    "COMMIT",
  ].join(";\n");
}
