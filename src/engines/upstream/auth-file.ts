/**
 * `auth_file`: pgbouncer's userlist file, so that pgts can check a client's
 * password and log in upstream as the client's role without reading the
 * upstream's pg_authid (pgbouncer's auth_query). One line per role:
 *
 *     "alice" "SCRAM-SHA-256$4096:salt$StoredKey:ServerKey"
 *     "bob"   "md5<32 hex digits>"
 *     "carol" "a plain password"
 *
 * A double quote inside a field is written twice; lines that do not start
 * with a double quote (comments, blank lines) are skipped. What each kind
 * allows upstream:
 *
 * - a SCRAM secret (copied from the upstream's pg_authid): a client that
 *   logs in with SCRAM proves its ClientKey, which logs it in upstream
 *   (the secret must be the upstream's own); the password is never known.
 * - an md5 hash: enough to answer the upstream's md5 challenge.
 * - a plain password: any method the upstream asks for; kept in memory
 *   only as the file gives it, and checked against clients through a
 *   SCRAM secret made from it, so that no plain text reaches a log.
 *
 * This module only parses; the server glue reads the file (at every login,
 * so that edits take effect at once) and the engines use the entries.
 */

import { isMd5Secret } from "../../core/auth/md5.ts";
import { buildScramSecret, parseScramSecret } from "../../core/auth/scram.ts";
import type { RoleInfo, ScramLogin } from "../../core/engine/types.ts";
import type { UpstreamLogin } from "./connect.ts";
import { scramKeysOf } from "./scram-client.ts";

/** pg_authid.rolvaliduntil in ms since the Unix epoch (RoleInfo.validUntil). */
const VALID_UNTIL_MS = "pg_catalog.date_part('epoch', rolvaliduntil) * 1000";

/**
 * What a role lookup without auth_file reads of the role `where` names:
 * pg_authid's row with its secret, or for a login that may not read
 * pg_authid (42501) pg_roles' without one. Either answers roleFromRow's
 * row.
 */
export function roleLookupSql(where: string): { authid: string; roles: string } {
  return {
    authid:
      `SELECT rolsuper, rolcanlogin, rolpassword, ${VALID_UNTIL_MS} FROM pg_catalog.pg_authid ${where}`,
    roles:
      `SELECT rolsuper, rolcanlogin, NULL, ${VALID_UNTIL_MS} FROM pg_catalog.pg_roles ${where}`,
  };
}

/** Role `name` from a row of roleLookupSql's statements. */
export function roleFromRow(name: string, row: readonly (string | null)[]): RoleInfo {
  return {
    name,
    superuser: row[0] === "t",
    canLogin: row[1] === "t",
    secret: row[2] ?? null,
    validUntil: row[3] == null ? null : Number(row[3]),
  };
}

export type AuthFileEntry =
  | { readonly kind: "scram"; readonly secret: string }
  | { readonly kind: "md5"; readonly secret: string }
  | { readonly kind: "plain"; readonly password: string };

/** Gives the file's entry for a role (null: not in the file, or no file). */
export type AuthFileLookup = (user: string) => Promise<AuthFileEntry | null>;

/**
 * The entries of a userlist text, and the numbers of the lines that could
 * not be read (an unterminated quote, a missing second field).
 */
export function parseAuthFile(
  text: string,
): { entries: Map<string, AuthFileEntry>; badLines: number[] } {
  const entries = new Map<string, AuthFileEntry>();
  const badLines: number[] = [];
  text.split("\n").forEach((line, i) => {
    const t = line.trim();
    if (!t.startsWith('"')) return;
    const fields: string[] = [];
    let at = 0;
    while (fields.length < 2 && t[at] === '"') {
      let field = "";
      let j = at + 1;
      for (;;) {
        if (j >= t.length) return badLines.push(i + 1);
        if (t[j] === '"') {
          if (t[j + 1] === '"') {
            field += '"';
            j += 2;
            continue;
          }
          break;
        }
        field += t[j++];
      }
      fields.push(field);
      at = j + 1;
      while (at < t.length && /\s/.test(t[at]!)) at++;
    }
    const [user, secret] = fields;
    if (user === undefined || secret === undefined || user === "") return badLines.push(i + 1);
    entries.set(user, entryOf(secret));
  });
  return { entries, badLines };
}

function entryOf(secret: string): AuthFileEntry {
  if (parseScramSecret(secret) !== null) return { kind: "scram", secret };
  if (isMd5Secret(secret)) return { kind: "md5", secret };
  return { kind: "plain", password: secret };
}

/**
 * The secrets a client's password is checked against (RoleInfo.secret):
 * the file's SCRAM or md5 secret, or, for a plain password, a SCRAM secret
 * made from it once (PBKDF2 is slow) and kept while the password is the same.
 */
export class AuthFileSecrets {
  #built = new Map<string, { password: string; secret: Promise<string> }>();

  secretOf(user: string, entry: AuthFileEntry): Promise<string> {
    if (entry.kind !== "plain") return Promise.resolve(entry.secret);
    const known = this.#built.get(user);
    if (known !== undefined && known.password === entry.password) return known.secret;
    const secret = buildScramSecret(entry.password);
    this.#built.set(user, { password: entry.password, secret });
    return secret;
  }
}

/**
 * How a session of `user` logs in upstream when it is not the URL's user:
 * with auth_file's password or md5 hash, else with the SCRAM keys its
 * client proved, else null (the URL's user, with `role` set).
 */
export function upstreamLoginFor(
  user: string,
  options: { entry: AuthFileEntry | null; scram: ScramLogin | undefined; urlUser: string },
): UpstreamLogin | null {
  if (user === options.urlUser) return null;
  const e = options.entry;
  if (e?.kind === "plain") return { user, password: e.password };
  if (e?.kind === "md5") return { user, md5: e.secret };
  const keys = options.scram === undefined ? null : scramKeysOf(options.scram);
  return keys === null ? null : { user, keys };
}
