/**
 * The postmaster's half of SSL (be-secure.c's secure_initialize and
 * be_tls_init): read ssl_cert_file, ssl_key_file and ssl_ca_file (relative
 * to the data directory), check that they load, and hand the backends the
 * result as an `SslConfig`. At server start a failure is FATAL with
 * PostgreSQL's message; on reload it is logged and the previous
 * configuration stays in force ("SSL configuration was not reloaded").
 *
 * Runtime glue: it reads files with node:fs and loads node:tls only when
 * ssl is on.
 */

import { readFileSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import process from "node:process";
import {
  certificateEndPoint,
  pemCertificate,
  type SslConfig,
  type TlsVersion,
} from "../core/backend/secure.ts";
import { ereport, ERRCODE, isPgError, PgError } from "../core/elog.ts";
import type { Guc } from "../core/guc/guc.ts";
import type { HbaLine } from "../core/auth/hba.ts";
import { errorCode, strerror } from "../adapters/node/fs-errors.ts";

const LOG = { category: "postmaster" } as const;

function fail(isServerStart: boolean, code: string, message: string, detail?: string): PgError {
  return new PgError(code, message, {
    severity: isServerStart ? "FATAL" : "LOG",
    ...(detail !== undefined ? { detail } : {}),
  });
}

/**
 * check_ssl_key_file_permissions: the key must be a regular file, and
 * readable by its owner alone (u=rw), or also by the group when root owns it.
 */
function checkKeyFile(path: string, name: string, isServerStart: boolean): void {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw fail(
      isServerStart,
      errorCode(e) === "ENOENT" ? ERRCODE.UNDEFINED_FILE : ERRCODE.CONFIG_FILE_ERROR,
      `could not access private key file "${name}": ${strerror(e)}`,
    );
  }
  if (!st.isFile()) {
    throw fail(
      isServerStart,
      ERRCODE.CONFIG_FILE_ERROR,
      `private key file "${name}" is not a regular file`,
    );
  }
  const uid = typeof process.geteuid === "function" ? process.geteuid() : -1;
  const mode = st.mode;
  if ((st.uid === uid && (mode & 0o077) !== 0) || (st.uid === 0 && (mode & 0o037) !== 0)) {
    throw fail(
      isServerStart,
      ERRCODE.CONFIG_FILE_ERROR,
      `private key file "${name}" has group or world access`,
      "File must have permissions u=rw (0600) or less if owned by the database user, or permissions u=rw,g=r (0640) or less if owned by root.",
    );
  }
}

function readPem(path: string, message: string, isServerStart: boolean): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw fail(isServerStart, ERRCODE.CONFIG_FILE_ERROR, `${message}: ${strerror(e)}`);
  }
}

/**
 * Loads the SSL files named by the settings; null when ssl is off. Throws
 * the PgError PostgreSQL reports (FATAL at server start, LOG otherwise).
 */
export async function loadSslConfig(
  guc: Guc,
  dataDir: string,
  options: { isServerStart: boolean },
): Promise<SslConfig | null> {
  if (!guc.getBool("ssl")) return null;
  const start = options.isServerStart;
  const at = (name: string) => (isAbsolute(name) ? name : join(dataDir, name));
  const certName = guc.getString("ssl_cert_file");
  const keyName = guc.getString("ssl_key_file");
  const caName = guc.getString("ssl_ca_file");
  const cert = readPem(at(certName), `could not load server certificate file "${certName}"`, start);
  checkKeyFile(at(keyName), keyName, start);
  const key = readPem(at(keyName), `could not load private key file "${keyName}"`, start);
  const ca = caName === ""
    ? null
    : readPem(at(caName), `could not load root certificate file "${caName}"`, start);
  const max = guc.getString("ssl_max_protocol_version");
  const der = pemCertificate(cert);
  const endPoint = der === null ? null : await certificateEndPoint(der);
  const config: SslConfig = {
    cert,
    key,
    ca,
    minProtocol: guc.getString("ssl_min_protocol_version") as TlsVersion,
    maxProtocol: max === "" ? null : max as TlsVersion,
    serverEndPoint: endPoint === null ? null : btoa(String.fromCharCode(...endPoint)),
  };
  const { checkSslConfig } = await import("../adapters/node/tls.ts");
  const failure = checkSslConfig(config);
  if (failure !== null) {
    const message = failure.part === "cert"
      ? `could not load server certificate file "${certName}": ${failure.reason}`
      : failure.part === "key"
      ? `could not load private key file "${keyName}": ${failure.reason}`
      : failure.part === "ca"
      ? `could not load root certificate file "${caName}": ${failure.reason}`
      : `check of private key failed: ${failure.reason}`;
    throw fail(start, ERRCODE.CONFIG_FILE_ERROR, message);
  }
  return config;
}

/**
 * parse_hba_line's warning: with ssl off a hostssl line can never match.
 * Logged, and the line kept, as PostgreSQL does.
 */
export function warnHostsslWithoutSsl(lines: readonly HbaLine[], guc: Guc): void {
  if (guc.getBool("ssl")) return;
  for (const line of lines) {
    if (line.connType !== "hostssl") continue;
    ereport("LOG", "hostssl record cannot match because SSL is disabled", {
      ...LOG,
      code: ERRCODE.CONFIG_FILE_ERROR,
      hint: 'Set "ssl = on" in postgresql.conf.',
      context: `line ${line.lineNumber} of configuration file "${line.fileName}"`,
    });
  }
}

/**
 * The SIGHUP half: the new configuration, or `previous` after logging why
 * the new one did not load, as PostgreSQL keeps its SSL context then.
 */
export async function reloadSslConfig(
  guc: Guc,
  dataDir: string,
  previous: SslConfig | null,
): Promise<SslConfig | null> {
  try {
    return await loadSslConfig(guc, dataDir, { isServerStart: false });
  } catch (e) {
    if (!isPgError(e)) throw e;
    ereport("LOG", e.message, {
      ...LOG,
      code: e.code,
      ...(e.detail !== undefined ? { detail: e.detail } : {}),
    });
    ereport("LOG", "SSL configuration was not reloaded", LOG);
    return previous;
  }
}
