/**
 * What depends on a role in the other databases of the cluster, for DROP
 * ROLE. PostgreSQL's pg_shdepend is one shared catalog: DROP ROLE finds
 * there the objects a role owns, the privileges granted to it and the
 * policies naming it in every database, and refuses (2BP01) while any
 * remain, listing its own database's objects and a count for each other
 * database. pgts runs an engine per database, each with its own
 * pg_shdepend, whose DROP ROLE sees only its own database: a role dropped
 * while it owned a table elsewhere left that table owned by a missing oid,
 * and the next role given that oid (by any engine's CREATE ROLE) owned it.
 * So before a client's DROP ROLE runs, the session asks the cluster for
 * the other databases' counts (`dropRoleElsewhere` here; dbengines.ts
 * gathers them, from each engine or from the list for a closed one) and
 * refuses as PostgreSQL does.
 *
 * A DO block's DROP ROLE of a name written out is looked up too
 * (statementtext.ts), before the block runs: an EXCEPTION clause of the
 * block cannot catch that refusal, as PostgreSQL's can catch its own. What
 * it does not see: a DROP ROLE inside a function or built by EXECUTE, and
 * an object made in another database between the look and the DROP's
 * commit (PostgreSQL locks the role; pgts does not).
 */

import { ERRCODE, PgError } from "../../core/elog.ts";

/**
 * An engine's own database's rows of pg_shdepend per role (oid → count), as
 * one JSON object. Rows with dbid 0 are the databases' (every engine has the
 * same, pg_database.ts's mirror): each engine's own DROP ROLE sees those.
 */
export const DEPENDENTS_SQL = "select coalesce(pg_catalog.json_object_agg(refobjid, n), '{}')" +
  "::text from (select refobjid, pg_catalog.count(*) n from pg_catalog.pg_shdepend" +
  " where dbid <> 0 and refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass" +
  " group by refobjid) d";

/** A database's count of rows per role oid (DEPENDENTS_SQL's text, parsed). */
export type RoleDependents = Readonly<Record<string, number>>;

/** DEPENDENTS_SQL's answer as counts; an answer of no rows is none. */
export function parseDependents(json: string | null): RoleDependents {
  return json === null ? {} : JSON.parse(json) as RoleDependents;
}

/**
 * The lines DROP ROLE's DETAIL gives for role `oid`'s dependencies in the
 * engine's own database and the shared objects, in PostgreSQL's order
 * (object oid, catalog, column, kind), one text; '' when none. Objects are
 * named as under the default search_path (PostgreSQL names them as the
 * session's finds them: `table t`, not `table public.t`).
 */
export function ownDependentsSql(oid: number): string {
  return "BEGIN; SET LOCAL search_path = public;" +
    " select coalesce(pg_catalog.string_agg(case deptype" +
    " when 'o' then 'owner of ' when 'a' then 'privileges for '" +
    " when 'i' then 'initial privileges for ' when 'r' then 'target of '" +
    " when 't' then 'tablespace for ' end" +
    " || pg_catalog.pg_describe_object(classid, objid, objsubid), E'\\n'" +
    " order by objid, classid, objsubid, deptype), '') from pg_catalog.pg_shdepend" +
    ` where refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass and refobjid = ${oid}` +
    " and deptype in ('o', 'a', 'i', 'r', 't'); COMMIT";
}

/**
 * PostgreSQL's refusal of DROP ROLE for `role`: its own database's lines
 * (`own`, when known), then one line per other database that has any.
 */
export function dropRoleRefusal(
  role: string,
  elsewhere: ReadonlyArray<readonly [database: string, count: number]>,
  own: string,
): PgError {
  const lines = own === "" ? [] : [own];
  for (const [database, n] of elsewhere) {
    lines.push(`${n} ${n === 1 ? "object" : "objects"} in database ${database}`);
  }
  return new PgError(
    ERRCODE.DEPENDENT_OBJECTS_STILL_EXIST,
    `role "${role}" cannot be dropped because some objects depend on it`,
    { detail: lines.join("\n") },
  );
}

/** What the look needs of the session's engine. */
export interface DependentsHost {
  role(name: string): { readonly oid: number } | undefined;
  queryAsCluster(sql: string): Promise<string | null>;
}

/**
 * PostgreSQL's refusal of a DROP ROLE that names `roles` (in order) on
 * `engine`, for the first role with dependencies in another database
 * (`elsewhere`: each other database's counts, in the list's order); null
 * when none has any (the engine's own DROP ROLE then checks its own
 * database). `ownLines`: whether the engine may be asked for its own
 * database's lines (not while the session holds it, in a transaction block:
 * the DETAIL then has the other databases' only).
 */
export async function dropRoleElsewhere(
  engine: DependentsHost,
  roles: readonly string[],
  options: {
    ownLines: boolean;
    elsewhere: (oids: readonly number[]) => Promise<Array<readonly [string, RoleDependents]>>;
  },
): Promise<PgError | null> {
  const named = roles.flatMap((name) => {
    const oid = engine.role(name)?.oid;
    return oid === undefined ? [] : [[name, oid] as const];
  });
  if (named.length === 0) return null;
  const found = await options.elsewhere(named.map(([, oid]) => oid));
  for (const [name, oid] of named) {
    const elsewhere = found.flatMap(([db, counts]) => {
      const n = counts[String(oid)] ?? 0;
      return n > 0 ? [[db, n] as const] : [];
    });
    if (elsewhere.length === 0) continue;
    const own = options.ownLines ? (await engine.queryAsCluster(ownDependentsSql(oid))) ?? "" : "";
    return dropRoleRefusal(name, elsewhere, own);
  }
  return null;
}
