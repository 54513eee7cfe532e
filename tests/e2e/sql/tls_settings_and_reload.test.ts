/**
 * The SSL settings as PostgreSQL reads them: ssl off (the default) answers
 * SSLRequest with 'N' and plain connections go on as before; a certificate
 * or key that does not load stops the server from starting with
 * PostgreSQL's message (file names relative to the data directory); on
 * reload, new files take effect for new connections, a broken one is
 * logged and the previous configuration stays, and ssl = off turns SSL off.
 * A client the postmaster turns away itself (too many clients) negotiates
 * SSL first, so a client that requires SSL reads the FATAL.
 */

import { afterAll, expect, test } from "bun:test";
import { chmodSync, copyFileSync, writeFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import pg from "pg";
import {
  type PgtsServer,
  psql,
  startSqlServer,
  useSqlServers,
  waitFor,
} from "../../helpers/pgts-sql.ts";
import { TestCertificates } from "../../helpers/tls.ts";

useSqlServers({ timeoutMs: 90_000 });

const certs = new TestCertificates();
afterAll(() => certs.remove());

const SSL_REQUEST = Uint8Array.of(0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f);

/** The server's one-byte answer to an SSLRequest. */
function sslAnswer(s: PgtsServer): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = netConnect({ host: "127.0.0.1", port: s.port }, () => sock.write(SSL_REQUEST));
    sock.once("data", (d: Buffer) => {
      resolve(String.fromCharCode(d[0]!));
      sock.destroy();
    });
    sock.on("error", reject);
  });
}

function tcp(s: PgtsServer, extra: string): string {
  return `host=localhost hostaddr=127.0.0.1 port=${s.port} dbname=postgres user=postgres ${extra}`;
}

test("ssl off (the default): SSLRequest gets 'N', plain connections work, sslmode=require is refused", async () => {
  const s = await startSqlServer({
    hba:
      "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 trust\n",
  });
  // As PostgreSQL, a hostssl line with ssl off is kept, with a warning.
  expect(s.log).toContain("LOG:  hostssl record cannot match because SSL is disabled");
  expect(await sslAnswer(s)).toBe("N");
  const prefer = await psql(s, [tcp(s, "sslmode=prefer"), "-c", "\\conninfo"]);
  expect(prefer.err).toBe("");
  expect(prefer.out).not.toContain("SSL connection");
  const require = await psql(s, [tcp(s, "sslmode=require"), "-c", "select 1"]);
  expect(require.code).not.toBe(0);
  expect(require.err).toContain("server does not support SSL, but SSL was required");
});

test("ssl on with files that do not load: the server does not start, with PostgreSQL's message", async () => {
  // server.crt, relative to the data directory, is not there.
  await expect(startSqlServer({ conf: "ssl = on", perTest: true })).rejects.toThrow(
    'FATAL:  could not load server certificate file "server.crt": No such file or directory',
  );
  // A key that others can read.
  const loose = join(certs.dir, "loose.key");
  copyFileSync(certs.path("server.key"), loose);
  chmodSync(loose, 0o644);
  await expect(
    startSqlServer({
      conf: `ssl = on\nssl_cert_file = '${certs.path("server.crt")}'\nssl_key_file = '${loose}'`,
      perTest: true,
    }),
  ).rejects.toThrow(`FATAL:  private key file "${loose}" has group or world access`);
  // A key that is not the certificate's.
  await expect(
    startSqlServer({
      conf: `ssl = on\nssl_cert_file = '${certs.path("server.crt")}'\nssl_key_file = '${
        certs.path("other-ca.key")
      }'`,
      perTest: true,
    }),
  ).rejects.toThrow("FATAL:  check of private key failed: key values mismatch");
});

test("reload: a broken certificate keeps the previous configuration; ssl = off answers 'N' again", async () => {
  const cert = join(certs.dir, "reload.crt");
  copyFileSync(certs.path("server.crt"), cert);
  const s = await startSqlServer({
    conf: `ssl = on\nssl_cert_file = '${cert}'\nssl_key_file = '${certs.path("server.key")}'`,
  });
  const verified = tcp(s, `sslmode=verify-full sslrootcert=${certs.path("ca.crt")}`);
  expect((await psql(s, [verified, "-c", "select 'before'"])).out.trim()).toBe("before");

  writeFileSync(cert, "not a certificate\n");
  const from = s.log.length;
  expect((await s.reload()).code).toBe(0);
  await s.waitForLog(/SSL configuration was not reloaded/, { from });
  expect(s.log.slice(from)).toMatch(
    new RegExp(`LOG:  could not load server certificate file "${cert}": `),
  );
  const still = await psql(s, [verified, "-c", "select 'still'"]);
  expect(still.err).toBe("");
  expect(still.out.trim()).toBe("still");

  // The certificate back, and TLS 1.3 at least: a client capped at TLS 1.2 is refused.
  copyFileSync(certs.path("server.crt"), cert);
  s.appendConf("ssl_min_protocol_version = 'TLSv1.3'");
  expect((await s.reload()).code).toBe(0);
  const capped = tcp(s, "sslmode=require ssl_max_protocol_version=TLSv1.2");
  // Under Deno the refused client reads no protocol_version alert, only the
  // close: Deno's node:tls (rustls) sends no alert over a stream that is not
  // its own socket (README, "Under Deno"). The server's log says why.
  const refusal = s.runtime === "deno" ? /EOF detected/ : /protocol version|unsupported protocol/i;
  await waitFor("ssl_min_protocol_version to take effect", async () => {
    const r = await psql(s, [capped, "-c", "select 1"]);
    return r.code !== 0 && refusal.test(r.err);
  });
  if (s.runtime === "deno") {
    await s.waitForLog(/could not accept SSL connection: peer is incompatible/, { from });
  }
  expect((await psql(s, [verified, "-c", "select 'tls13'"])).out.trim()).toBe("tls13");

  s.appendConf("ssl = off");
  expect((await s.reload()).code).toBe(0);
  await waitFor("ssl off to take effect", async () => (await sslAnswer(s)) === "N");
  const plain = await psql(s, [tcp(s, "sslmode=require"), "-c", "select 1"]);
  expect(plain.err).toContain("server does not support SSL, but SSL was required");
});

for (const adapter of [undefined, "subprocess"] as const) {
  test(`too many clients (${adapter ?? "default"} adapter): a client that requires SSL reads the FATAL over SSL`, async () => {
    const s = await startSqlServer({
      ...(adapter !== undefined ? { adapter } : {}),
      conf: [
        "ssl = on",
        `ssl_cert_file = '${certs.path("server.crt")}'`,
        `ssl_key_file = '${certs.path("server.key")}'`,
        "max_connections = 1",
        "superuser_reserved_connections = 0",
      ].join("\n"),
    });
    const holder = new pg.Client({
      host: "127.0.0.1",
      port: s.port,
      user: "postgres",
      database: "postgres",
      ssl: { rejectUnauthorized: false },
    });
    await holder.connect();
    try {
      const refused = await psql(s, [tcp(s, "sslmode=require"), "-c", "select 1"]);
      expect(refused.code).not.toBe(0);
      expect(refused.err).toContain("FATAL:  sorry, too many clients already");
      const full = await psql(s, [
        tcp(s, `sslmode=verify-full sslrootcert=${certs.path("ca.crt")}`),
        "-c",
        "select 1",
      ]);
      expect(full.err).toContain("FATAL:  sorry, too many clients already");
    } finally {
      await holder.end();
    }
  });
}
