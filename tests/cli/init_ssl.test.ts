/**
 * `pgts init --ssl`: the new cluster has a self-signed certificate and key
 * (server.crt and server.key, the key 0600) made by openssl, and ssl = on,
 * so its first start already serves SSL; psql connects with
 * sslmode=require, and with verify-full given the certificate as its root.
 */

import { expect, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { psql, startSqlServer, useSqlServers } from "../helpers/pgts-sql.ts";
import { ensureOpenssl } from "../helpers/tls.ts";

useSqlServers({ timeoutMs: 120_000 });

test("pgts init --ssl: a self-signed certificate, ssl = on, and psql connects over SSL", async () => {
  ensureOpenssl();
  const s = await startSqlServer({ initArgs: ["--ssl"] });
  const key = statSync(join(s.dataDir, "server.key"));
  expect(key.mode & 0o777).toBe(0o600);
  expect(readFileSync(join(s.dataDir, "server.crt"), "utf8")).toContain("BEGIN CERTIFICATE");
  expect(readFileSync(join(s.dataDir, "postgresql.conf"), "utf8")).toMatch(/^ssl = on$/m);

  const tcp = `host=localhost hostaddr=127.0.0.1 port=${s.port} dbname=postgres user=postgres`;
  const req = await psql(s, [`${tcp} sslmode=require`, "-c", "\\conninfo"]);
  expect(req.err).toBe("");
  expect(req.out).toContain("SSL connection (protocol: TLSv1.3");
  const full = await psql(s, [
    `${tcp} sslmode=verify-full sslrootcert=${join(s.dataDir, "server.crt")}`,
    "-c",
    "select 'verified'",
  ]);
  expect(full.err).toBe("");
  expect(full.out.trim()).toBe("verified");
});
