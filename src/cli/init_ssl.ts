/**
 * `pgts init --ssl`: a self-signed server certificate and its key in the
 * new data directory (server.crt, server.key: ssl_cert_file's and
 * ssl_key_file's defaults), and `ssl = on` in postgresql.conf, so that the
 * server accepts SSL from its first start. The pair is made by the
 * `openssl` program when it is installed, as PostgreSQL's documentation
 * makes one by hand, and otherwise by pgts itself with crypto.subtle
 * (selfsigned.ts); either way an EC P-256 key and a certificate valid ten
 * years for localhost, 127.0.0.1 and ::1. Clients that verify the server
 * (sslmode=verify-ca, verify-full) need a certificate from a real
 * authority, or this one given as their root.
 */

import { spawnSync } from "node:child_process";
import { appendFileSync, chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeSelfSignedCertificate } from "./selfsigned.ts";

/** What `writeSelfSignedCertificate` made. */
export interface SelfSignedCertificate {
  readonly certFile: string;
  readonly keyFile: string;
  /** What made it: "openssl", or "built-in" (crypto.subtle, when openssl is not installed). */
  readonly tool: "openssl" | "built-in";
}

/**
 * Writes server.crt and server.key into `dataDir` and turns ssl on in its
 * postgresql.conf. Throws an Error saying what failed (openssl's own
 * complaint, or a file that could not be written).
 */
export async function writeSelfSignedCertificate(
  dataDir: string,
  options: { commonName?: string; openssl?: string } = {},
): Promise<SelfSignedCertificate> {
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
  let tool: SelfSignedCertificate["tool"] = "openssl";
  if (r.error !== undefined) {
    if ((r.error as { code?: string }).code !== "ENOENT") {
      throw new Error(`could not run "${openssl}": ${r.error.message}`);
    }
    // No openssl here: the same kind of certificate, made by pgts.
    const made = await makeSelfSignedCertificate({ commonName: cn });
    writeFileSync(keyFile, made.key, { mode: 0o600 });
    writeFileSync(certFile, made.cert, { mode: 0o600 });
    tool = "built-in";
  } else if (r.status !== 0) {
    throw new Error(`"${openssl} req" failed: ${(r.stderr ?? "").trim()}`);
  }
  // PostgreSQL refuses a key that the group or others can read.
  chmodSync(keyFile, 0o600);
  chmodSync(certFile, 0o600);
  appendFileSync(
    join(dataDir, "postgresql.conf"),
    "\n# pgts init --ssl: a self-signed certificate for localhost\nssl = on\n",
  );
  return { certFile, keyFile, tool };
}
