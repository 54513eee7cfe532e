/**
 * The certificate `pgts init --ssl` makes itself when the openssl program
 * is missing (src/cli/selfsigned.ts): X.509 v3 for localhost, 127.0.0.1 and
 * ::1, self-signed with ECDSA P-256 / SHA-256, CA:TRUE. Checked by node's
 * X509Certificate, by a TLS handshake that verifies it as its own root, and
 * by psql sslmode=verify-full against a pgts server that serves it.
 */

import { afterAll, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect as tlsConnect, createServer } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeSelfSignedCertificate } from "../../src/cli/selfsigned.ts";
import { writeSelfSignedCertificate } from "../../src/cli/init_ssl.ts";
import { certificateEndPoint, pemCertificate } from "../../src/core/backend/secure.ts";
import { psql, startSqlServer, useSqlServers } from "../helpers/pgts-sql.ts";

useSqlServers({ timeoutMs: 90_000 });

const dir = mkdtempSync(join(tmpdir(), "pgts-selfsigned-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("a self-signed certificate for localhost that verifies as its own root", async () => {
  const { cert, key } = await makeSelfSignedCertificate();
  const x = new X509Certificate(cert);
  expect(x.subject).toBe("CN=localhost");
  expect(x.issuer).toBe("CN=localhost");
  expect(x.ca).toBe(true);
  expect(x.checkHost("localhost")).toBe("localhost");
  expect(x.checkIP("127.0.0.1")).toBe("127.0.0.1");
  expect(x.verify(x.publicKey)).toBe(true);
  expect(Date.parse(x.validTo) - Date.now()).toBeGreaterThan(9 * 365 * 86_400_000);
  // ecdsa-with-SHA256: SCRAM-SHA-256-PLUS can bind to it.
  expect((await certificateEndPoint(pemCertificate(cert)!))?.length).toBe(32);

  const server = createServer({ cert, key }, (s) => s.end("hello"));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  try {
    const got = await new Promise<string>((resolve, reject) => {
      const c = tlsConnect({ host: "127.0.0.1", port, ca: cert, servername: "localhost" }, () => {
        c.once("data", (d: Buffer) => resolve(`${c.authorized} ${d.toString()}`));
      });
      c.on("error", reject);
    });
    expect(got).toBe("true hello");
  } finally {
    server.close();
  }
});

test("without the openssl program, init's certificate is made by pgts; psql verify-full accepts it", async () => {
  const data = join(dir, "data");
  mkdirSync(data);
  writeFileSync(join(data, "postgresql.conf"), "# empty\n");
  const made = await writeSelfSignedCertificate(data, { openssl: "/nonexistent/openssl" });
  expect(made.tool).toBe("built-in");
  expect(statSync(made.keyFile).mode & 0o777).toBe(0o600);
  expect(readFileSync(join(data, "postgresql.conf"), "utf8")).toMatch(/^ssl = on$/m);

  const s = await startSqlServer({
    conf: `ssl = on\nssl_cert_file = '${made.certFile}'\nssl_key_file = '${made.keyFile}'`,
  });
  const r = await psql(s, [
    `host=localhost hostaddr=127.0.0.1 port=${s.port} dbname=postgres user=postgres ` +
    `sslmode=verify-full sslrootcert=${made.certFile}`,
    "-c",
    "\\conninfo",
  ]);
  expect(r.err).toBe("");
  expect(r.out).toContain("SSL connection (protocol: TLSv1.3");
});
