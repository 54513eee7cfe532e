/**
 * `pgts init --ssl`: a self-signed server certificate and its key in the
 * new data directory (server.crt, server.key: ssl_cert_file's and
 * ssl_key_file's defaults), and `ssl = on` in postgresql.conf, so that the
 * server accepts SSL from its first start. The pair is made by the
 * `openssl` program (an EC P-256 key, valid ten years, for localhost,
 * 127.0.0.1 and ::1), as PostgreSQL's documentation makes one by hand.
 * Clients that verify the server (sslmode=verify-ca, verify-full) need a
 * certificate from a real authority, or this one given as their root.
 */

import { spawnSync } from "node:child_process";
import { appendFileSync, chmodSync } from "node:fs";
import { join } from "node:path";

/** What `writeSelfSignedCertificate` made. */
export interface SelfSignedCertificate {
  readonly certFile: string;
  readonly keyFile: string;
  /** How it was made: the openssl program's path. */
  readonly tool: string;
}

/**
 * Writes server.crt and server.key into `dataDir` and turns ssl on in its
 * postgresql.conf. Throws an Error saying what failed (no openssl, or
 * openssl's own complaint).
 */
export function writeSelfSignedCertificate(
  dataDir: string,
  options: { commonName?: string; openssl?: string } = {},
): SelfSignedCertificate {
  const openssl = options.openssl ?? "openssl";
  const certFile = join(dataDir, "server.crt");
  const keyFile = join(dataDir, "server.key");
  const cn = options.commonName ?? "localhost";
  const r = spawnSync(openssl, [
    "req",
    "-new",
    "-x509",
    "-days",
    "3650",
    "-nodes",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-subj",
    `/CN=${cn}`,
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
    "-keyout",
    keyFile,
    "-out",
    certFile,
  ], { encoding: "utf8" });
  if (r.error !== undefined) {
    const missing = (r.error as { code?: string }).code === "ENOENT";
    throw new Error(
      missing
        ? `could not run "${openssl}" to create a certificate: program not found (install openssl, or create server.crt and server.key yourself)`
        : `could not run "${openssl}": ${r.error.message}`,
    );
  }
  if (r.status !== 0) {
    throw new Error(`"${openssl} req" failed: ${(r.stderr ?? "").trim()}`);
  }
  // PostgreSQL refuses a key that the group or others can read.
  chmodSync(keyFile, 0o600);
  chmodSync(certFile, 0o600);
  appendFileSync(
    join(dataDir, "postgresql.conf"),
    "\n# pgts init --ssl: a self-signed certificate for localhost\nssl = on\n",
  );
  return { certFile, keyFile, tool: openssl };
}
