/**
 * The checks of who is connecting that every front end makes, in
 * PostgreSQL's order: the pg_hba.conf line for the connection
 * (ClientAuthentication's check_hba, with uaReject), and, once the line's
 * method has run, whether the role exists and may log in (InitPostgres).
 * The exchange in between belongs to the front end: a protocol
 * conversation in a backend (core/backend/startup.ts), the password of a
 * connection string in an HTTP request. Both call these, so a refusal reads
 * the same whichever way the client came.
 */

import { ERRCODE, PgError } from "../elog.ts";
import {
  type ConnectionIdentity,
  type HbaConnection,
  type HbaLine,
  type HbaMethod,
  hbaRejectError,
  matchHba,
  noHbaEntryError,
} from "./hba.ts";

/**
 * The pg_hba.conf line that lets this connection try its method; FATAL
 * 28000 when no line matches or the line says reject. An address the file
 * cannot read (not a numeric IP) matches no host line.
 */
export async function hbaLineFor(
  hba: readonly HbaLine[],
  conn: HbaConnection,
  who: ConnectionIdentity,
): Promise<HbaLine & { readonly method: Exclude<HbaMethod, "reject"> }> {
  let line: HbaLine | null;
  try {
    line = await matchHba(hba, conn);
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
    line = null;
  }
  if (line === null) throw noHbaEntryError(who);
  if (line.method === "reject") throw hbaRejectError(who);
  return line as HbaLine & { readonly method: Exclude<HbaMethod, "reject"> };
}

/**
 * After authentication: the role must exist and have LOGIN. A method such
 * as trust succeeds for any name, so this comes after it, as in
 * InitPostgres, and says which of the two failed.
 */
export function checkRoleLogin<R extends { readonly canLogin: boolean }>(
  role: R | null,
  user: string,
): R {
  if (role === null) {
    throw new PgError(
      ERRCODE.INVALID_AUTHORIZATION_SPECIFICATION,
      `role "${user}" does not exist`,
      { severity: "FATAL" },
    );
  }
  if (!role.canLogin) {
    throw new PgError(
      ERRCODE.INVALID_AUTHORIZATION_SPECIFICATION,
      `role "${user}" is not permitted to log in`,
      { severity: "FATAL" },
    );
  }
  return role;
}
