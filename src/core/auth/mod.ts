/**
 * @module
 * Client authentication for pgts: pg_hba.conf parsing and matching, the
 * password exchange state machine (trust, password, md5, scram-sha-256, and
 * SCRAM-SHA-256-PLUS over SSL), and the SCRAM-SHA-256 and MD5 primitives
 * with PostgreSQL's secret formats. (The cert method is the backend's: it
 * reads the client certificate of the SSL session.)
 * Web-standard APIs only (crypto.subtle); no sockets, no files, no catalog.
 *
 * ```ts
 * const hba = parseHba(text, { fileName: "pg_hba.conf" });
 * const line = await matchHba(hba, { type: "host", address, database, user });
 * if (line === null) throw noHbaEntryError({ host: address, user, database });
 * if (line.method === "reject") throw hbaRejectError({ host: address, user, database });
 * const auth = new ClientAuthentication({ method: line.method, user, secret });
 * for (let step = await auth.start();; step = await auth.receive(await nextPMessage(step.expect))) {
 *   socket.write(step.send);
 *   if (step.done) break;
 * }
 * ```
 */

export {
  type ConnectionIdentity,
  type HbaAddress,
  type HbaConnection,
  type HbaConnType,
  type HbaLine,
  type HbaMethod,
  hbaRejectError,
  type HbaToken,
  matchHba,
  noHbaEntryError,
  parseHba,
} from "./hba.ts";
export { checkRoleLogin, hbaLineFor } from "./authorize.ts";
export {
  type AuthStep,
  ClientAuthentication,
  type ClientAuthenticationOptions,
  passwordAuthFailedError,
} from "./client-auth.ts";
export {
  buildScramSecret,
  formatScramSecret,
  parseScramSecret,
  SCRAM_DEFAULT_ITERATIONS,
  SCRAM_SHA_256_NAME,
  ScramExchange,
  type ScramResult,
  type ScramSecret,
  scramVerifyPlainPassword,
} from "./scram.ts";
export { isMd5Secret, md5, md5Hex, md5PasswordHash, md5SaltedResponse } from "./md5.ts";
