/**
 * Role privileges as the engine last read them, for the checks pgts makes
 * without the backend (offengine.ts): acl.c's `has_privs_of_role` over
 * pg_authid and pg_auth_members.
 *
 * A role has the privileges of another when it is that role, is a
 * superuser, or reaches it through grants that inherit (pg_auth_members
 * rows with inherit_option, PostgreSQL 16's per-grant INHERIT;
 * roles_is_member_of with ROLERECURSE_PRIVS). Read again whenever the
 * engine re-reads pg_authid (postinit.ts, after any input that may change
 * roles), so it is never older than the role cache logins are checked
 * against. What it does not model: pg_database_owner's implicit member
 * (the database owner), which no login session's role is.
 */

/** A role as the privilege checks need it. */
export interface AclRole {
  readonly oid: number;
  readonly name: string;
  readonly superuser: boolean;
}

export class RoleGraph {
  readonly #byOid = new Map<number, AclRole>();
  readonly #byName = new Map<string, AclRole>();
  /** member → roles it is granted with INHERIT. */
  readonly #grants = new Map<number, number[]>();
  /** member → every role whose privileges it has through grants (computed on first use). */
  readonly #closure = new Map<number, Set<number>>();

  constructor(roles: Iterable<AclRole>, grants: Iterable<readonly [member: number, role: number]>) {
    for (const r of roles) {
      this.#byOid.set(r.oid, r);
      this.#byName.set(r.name, r);
    }
    for (const [member, role] of grants) {
      const list = this.#grants.get(member);
      if (list === undefined) this.#grants.set(member, [role]);
      else list.push(role);
    }
  }

  byOid(oid: number): AclRole | undefined {
    return this.#byOid.get(oid);
  }

  byName(name: string): AclRole | undefined {
    return this.#byName.get(name);
  }

  /** acl.c's has_privs_of_role(member, role). */
  hasPrivsOfRole(member: number, role: number): boolean {
    if (member === role) return true;
    if (this.#byOid.get(member)?.superuser === true) return true;
    let reach = this.#closure.get(member);
    if (reach === undefined) {
      reach = new Set<number>();
      const todo = [member];
      while (todo.length > 0) {
        for (const r of this.#grants.get(todo.pop()!) ?? []) {
          if (!reach.has(r)) {
            reach.add(r);
            todo.push(r);
          }
        }
      }
      this.#closure.set(member, reach);
    }
    return reach.has(role);
  }
}
