/**
 * Random scenarios for scripts/differential.ts (`--catalog N [--seed S]`):
 * what PostgreSQL keeps in its shared catalogs, changed from two databases
 * at once. Three sessions (two in the scenario's first database, one in
 * its second, all the bootstrap superuser) create, rename and drop three
 * roles, give the two databases owners, privileges, comments and settings,
 * run REASSIGN OWNED and DROP OWNED, and read pg_database, pg_roles and
 * privilege checks back. pgts runs each database on an engine of its own,
 * so every one of these crosses engines. Steps name the databases as
 * `{db_a}` and `{db_b}` (the runner's names for them). What would differ
 * for reasons the README lists is left out: no role owns or is granted
 * anything inside a database (DROP ROLE then differs), and
 * pg_db_role_setting's per-database rows are not read (each database's
 * engine keeps its own).
 */

import type { Scenario } from "./differential-scenarios.ts";
import { draws } from "./differential-random.ts";

const DATABASES = ["{db_a}", "{db_b}"];
const PRIVILEGES = ["connect", "temp", "create", "connect, temp", "all"];

/** `count` scenarios of `steps` steps each, from `seed`. */
export function catalogScenarios(count: number, seed: number, steps = 50): Scenario[] {
  const { rand, pick, n } = draws(seed);
  const out: Scenario[] = [];
  for (let k = 0; k < count; k++) {
    const roles = ["a", "b", "c", "d"].map((x) => `rc${seed}_${k}_${x}`);
    const role = () => pick(roles);
    const db = () => pick(DATABASES);
    const grantee = () => rand() < 0.2 ? "public" : role();
    const ops: Array<() => string> = [
      () => `create role ${role()} login`,
      () => `create role ${role()} createdb`,
      () => `alter role ${role()} rename to ${role()}`,
      () => `drop role ${role()}`,
      () => `drop role if exists ${role()}, ${role()}`,
      () => `alter database ${db()} owner to ${rand() < 0.2 ? "postgres" : role()}`,
      () =>
        `grant ${pick(PRIVILEGES)} on database ${db()} to ${grantee()}${
          rand() < 0.3 ? " with grant option" : ""
        }`,
      () => `revoke ${pick(PRIVILEGES)} on database ${db()} from ${grantee()}`,
      () => `revoke grant option for ${pick(PRIVILEGES)} on database ${db()} from ${role()}`,
      () => `comment on database ${db()} is 'c${n()}'`,
      () => `alter role ${role()} set work_mem = '${1 + (n() % 8)}MB'`,
      () => `alter role ${role()} in database ${db()} set work_mem = '${1 + (n() % 8)}MB'`,
      () => `alter role ${role()} in database ${db()} reset all`,
      () => `alter role ${role()} connection limit ${(n() % 4) - 1}`,
      () => `alter role ${role()} ${pick(["login", "nologin", "createdb", "nocreatedb"])}`,
      () => `alter role ${role()} valid until '${pick(["2001-01-01", "infinity", "2999-12-31"])}'`,
      () => `grant ${role()} to ${role()}`,
      () => `revoke ${role()} from ${role()}`,
      () => `comment on role ${role()} is 'r${n()}'`,
      () =>
        `select r.rolname, m.rolname from pg_auth_members a join pg_roles r on r.oid = a.roleid join pg_roles m on m.oid = a.member where r.rolname like 'rc${seed}\\_${k}\\_%' order by 1, 2`,
      () =>
        `select rolname, rolconnlimit, rolvaliduntil, shobj_description(oid, 'pg_authid') from pg_roles where rolname like 'rc${seed}\\_${k}\\_%' order by 1`,
      () => `reassign owned by ${role()} to ${rand() < 0.3 ? "postgres" : role()}`,
      () => `drop owned by ${role()}`,
      () => `drop owned by ${role()}, ${role()}`,
      () =>
        `select datname, datdba::regrole, datacl from pg_database where datname in ('{db_a}', '{db_b}') order by 1`,
      () =>
        `select datname, shobj_description(oid, 'pg_database') from pg_database where datname in ('{db_a}', '{db_b}') order by 1`,
      () =>
        `select rolname, rolcanlogin, rolcreatedb from pg_roles where rolname like 'rc${seed}\\_${k}\\_%' order by 1`,
      () =>
        `select r.rolname, s.setconfig from pg_db_role_setting s join pg_roles r on r.oid = s.setrole where s.setdatabase = 0 and r.rolname like 'rc${seed}\\_${k}\\_%' order by 1`,
      () => {
        const r = role();
        const d = db();
        return `select has_database_privilege(r.oid, '${d}', 'CONNECT'), has_database_privilege(r.oid, '${d}', 'CREATE WITH GRANT OPTION') from pg_roles r where rolname = '${r}'`;
      },
    ];
    const list: Array<readonly [number, string]> = [];
    while (list.length < steps) list.push([Math.floor(rand() * 3), pick(ops)()]);
    // Every role goes at the end, so that the next run starts clean.
    const cleanup: Array<readonly [number, string]> = roles.flatMap((r) => [
      [
        0,
        `do $$ begin if exists (select from pg_roles where rolname = '${r}') then` +
        ` reassign owned by ${r} to postgres; drop owned by ${r}; end if; end $$`,
      ] as const,
      [
        2,
        `do $$ begin if exists (select from pg_roles where rolname = '${r}') then` +
        ` drop owned by ${r}; end if; end $$`,
      ] as const,
    ]);
    out.push({
      name: `catalog_${seed}_${k}`,
      setup: roles.map((r) => `drop role if exists ${r}`),
      databases: ["a", "a", "b"],
      steps: [...list, ...cleanup, [0, `drop role if exists ${roles.join(", ")}`]],
    });
  }
  return out;
}
