/**
 * SSL with real clients, under Bun's default adapter (subprocess backends:
 * the TLS session lives in the backend process the socket was handed to),
 * under --adapter inproc and --adapter worker, and under Deno's default
 * adapter. One server per adapter, ssl = on
 * with a certificate signed by a test CA (CN localhost, SAN localhost and
 * 127.0.0.1), the CA as ssl_ca_file, and a pg_hba.conf with hostssl,
 * hostnossl and cert lines:
 *
 * - psql sslmode=require and sslmode=verify-full with the CA;
 * - node-postgres `ssl: { ca }` (and a wrong CA failing), postgres.js `ssl: 'require'`;
 * - hostssl refusing a plain connection and hostnossl an SSL one, with PostgreSQL's 28000 texts;
 * - the cert method (client certificate CN = role);
 * - SCRAM-SHA-256-PLUS (psql channel_binding=require);
 * - PostgreSQL 17's direct SSL (a ClientHello first, ALPN "postgresql"), and the protocol
 *   violations around SSLRequest, with hand-built bytes.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import pg from "pg";
import postgres from "postgres";
import {
  errorFields,
  type PgtsServer,
  psql,
  type SqlServerOptions,
  startSqlServer,
  startupPacket,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";
import { TEST_RUNTIME } from "../../helpers/pgts.ts";
import { TestCertificates } from "../../helpers/tls.ts";

useSqlServers({ timeoutMs: 90_000 });

const certs = new TestCertificates();
afterAll(() => certs.remove());

const HBA = [
  "local     all all                 trust",
  "hostnossl all plainonly 127.0.0.1/32 trust",
  "hostssl   all alice     127.0.0.1/32 cert",
  "hostssl   all carol     127.0.0.1/32 scram-sha-256 clientcert=verify-full",
  "hostssl   all scram     127.0.0.1/32 scram-sha-256",
  "hostssl   all postgres  127.0.0.1/32 trust",
  "",
].join("\n");

function sslConf(): string {
  return [
    "ssl = on",
    "log_connections = on",
    `ssl_cert_file = '${certs.path("server.crt")}'`,
    `ssl_key_file = '${certs.path("server.key")}'`,
    `ssl_ca_file = '${certs.path("ca.crt")}'`,
  ].join("\n");
}

/** A libpq connection string over TCP. */
function conninfo(s: PgtsServer, extra: string, user = "postgres"): string {
  return `host=localhost hostaddr=127.0.0.1 port=${s.port} dbname=postgres user=${user} ${extra}`;
}

/** The first bytes of the server's answer on a raw TCP connection after `bytes`. */
function rawExchange(s: PgtsServer, bytes: Uint8Array): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const sock: Socket = netConnect({ host: "127.0.0.1", port: s.port }, () => sock.write(bytes));
    let data = Buffer.alloc(0);
    sock.on("data", (d) => (data = Buffer.concat([data, d])));
    sock.on("error", () => {});
    sock.on("close", () => resolve({ data, closed: true }));
    setTimeout(() => {
      sock.destroy();
      resolve({ data, closed: false });
    }, 5_000);
  });
}

const SSL_REQUEST = Uint8Array.of(0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f);

/** Direct SSL: TLS from the first byte, then a startup packet inside; the first message back. */
function directSsl(
  s: PgtsServer,
  options: { alpn: boolean },
): Promise<{ alpn: string | false; first: string | null }> {
  return new Promise((resolve, reject) => {
    const sock: TLSSocket = tlsConnect({
      host: "127.0.0.1",
      port: s.port,
      ca: certs.read("ca.crt"),
      servername: "localhost",
      ...(options.alpn ? { ALPNProtocols: ["postgresql"] } : {}),
    });
    let alpn: string | false = false;
    sock.on("secureConnect", () => {
      alpn = sock.alpnProtocol;
      sock.write(startupPacket({ user: "postgres", database: "postgres" }));
    });
    sock.on("data", (d: Buffer) => {
      resolve({ alpn, first: String.fromCharCode(d[0]!) });
      sock.end();
    });
    sock.on("error", () => {});
    sock.on("close", () => resolve({ alpn, first: null }));
    setTimeout(() => reject(new Error("no answer to direct SSL")), 10_000);
  });
}

// The first two run under the suite's runtime (PGTS_TEST_RUNTIME); under
// Deno they already are the Deno case, so it is not run a second time. The
// default adapter is `inproc`: an explicit `--adapter inproc` is the same server.
const SUITE_RUNTIME = TEST_RUNTIME === "deno" ? "Deno" : "Bun";
const VARIANTS: ReadonlyArray<{ name: string; options: SqlServerOptions }> = [
  { name: `${SUITE_RUNTIME}, default adapter`, options: {} },
  { name: `${SUITE_RUNTIME}, --adapter worker`, options: { adapter: "worker" } },
  ...(TEST_RUNTIME === "deno"
    ? []
    : [{ name: "Deno, default adapter", options: { runtime: "deno" } } as const]),
];

/** SSLRequest, then (after the answer) `bytes` in plain text; whether the server closed. */
function rawSslThen(s: PgtsServer, bytes: Uint8Array): Promise<{ closed: boolean }> {
  return new Promise((resolve) => {
    const sock = netConnect({ host: "127.0.0.1", port: s.port }, () => sock.write(SSL_REQUEST));
    sock.once("data", () => sock.write(bytes));
    sock.on("error", () => {});
    sock.on("close", () => resolve({ closed: true }));
    setTimeout(() => {
      sock.destroy();
      resolve({ closed: false });
    }, 10_000);
  });
}

/** SSLRequest, 'S', a handshake, then a second SSLRequest inside TLS: the ErrorResponse's fields. */
function sslTwice(s: PgtsServer): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const raw = netConnect({ host: "127.0.0.1", port: s.port }, () => raw.write(SSL_REQUEST));
    raw.once("data", (answer: Buffer) => {
      if (answer[0] !== 0x53) return reject(new Error(`SSLRequest answered ${answer[0]}`));
      const tls = tlsConnect({ socket: raw, ca: certs.read("ca.crt"), servername: "localhost" });
      let data = Buffer.alloc(0);
      tls.on("secureConnect", () => tls.write(SSL_REQUEST));
      tls.on("data", (d: Buffer) => (data = Buffer.concat([data, d])));
      tls.on("error", () => {});
      tls.on("close", () => {
        if (data[0] !== 0x45) return reject(new Error(`expected an ErrorResponse, got ${data[0]}`));
        resolve(errorFields(data.subarray(5)));
      });
    });
    raw.on("error", reject);
  });
}

for (const variant of VARIANTS) {
  describe(variant.name, () => {
    let started: Promise<PgtsServer> | null = null;
    const server = () =>
      started ??= (async () => {
        const s = await startSqlServer({
          ...variant.options,
          conf: sslConf(),
          hba: HBA,
        });
        const r = await psql(s, [
          "-c",
          "create role alice login; create role plainonly login; create role scram login password 'pw+'; create role carol login password 'c'",
        ]);
        if (r.code !== 0) throw new Error(r.err);
        return s;
      })();

    test("psql sslmode=require and sslmode=verify-full with the CA: the session is encrypted", async () => {
      const s = await server();
      const req = await psql(s, [conninfo(s, "sslmode=require"), "-c", "select 'over tls'"]);
      expect(req.err).toBe("");
      expect(req.out.trim()).toBe("over tls");

      const full = await psql(s, [
        conninfo(s, `sslmode=verify-full sslrootcert=${certs.path("ca.crt")}`),
        "-c",
        "\\conninfo",
      ]);
      expect(full.err).toBe("");
      expect(full.out).toMatch(/SSL connection \(protocol: TLSv1\.[23], cipher: /);
      await s.waitForLog(
        /connection authorized: user=postgres database=postgres application_name=psql SSL enabled \(protocol=TLSv1\.3, cipher=[A-Z0-9_-]+, bits=(128|256)\)/,
      );

      // A CA that did not sign the server's certificate: libpq refuses the server.
      const wrong = await psql(s, [
        conninfo(s, `sslmode=verify-full sslrootcert=${certs.path("other-ca.crt")}`),
        "-c",
        "select 1",
      ]);
      expect(wrong.code).not.toBe(0);
      expect(wrong.err).toContain("certificate verify failed");
    });

    test("pg_stat_ssl and pg_stat_gssapi show each session's connection", async () => {
      const s = await server();
      const own = "from pg_stat_ssl where pid = pg_backend_pid()";
      const tls = await psql(s, [
        conninfo(s, "sslmode=require"),
        "-c",
        `select ssl, version, cipher <> '', bits >= 128, client_dn is null ${own}`,
        "-c",
        "select gss_authenticated, principal is null, encrypted from pg_stat_gssapi" +
        " where pid = pg_backend_pid()",
      ]);
      expect(tls.err).toBe("");
      expect(tls.out.trim().split("\n")).toEqual(["t|TLSv1.3|t|t|t", "f|t|f"]);
      const alice = certs.client("alice");
      const withCert = await psql(s, [
        conninfo(s, `sslmode=require sslcert=${alice.cert} sslkey=${alice.key}`, "alice"),
        "-c",
        `select client_dn ${own}`,
      ]);
      expect(withCert.err).toBe("");
      expect(withCert.out.trim()).toBe("/CN=alice");
      const plain = await psql(s, [
        conninfo(s, "sslmode=disable", "plainonly"),
        "-c",
        `select ssl, version is null ${own}`,
      ]);
      expect(plain.err).toBe("");
      expect(plain.out.trim()).toBe("f|t");
    });

    test("node-postgres with ssl {ca} and postgres.js with ssl 'require' run queries over TLS", async () => {
      const s = await server();
      const c = new pg.Client({
        host: "localhost",
        port: s.port,
        user: "postgres",
        database: "postgres",
        ssl: { ca: certs.read("ca.crt") },
      });
      await c.connect();
      try {
        const r = await c.query("select $1::int + 1 as n", [41]);
        expect(r.rows).toEqual([{ n: 42 }]);
      } finally {
        await c.end();
      }

      const bad = new pg.Client({
        host: "localhost",
        port: s.port,
        user: "postgres",
        database: "postgres",
        ssl: { ca: certs.read("other-ca.crt") },
      });
      bad.on("error", () => {});
      const err = await bad.connect().then(() => null, (e: Error) => e);
      expect(err?.message ?? "").toMatch(/self[- ]signed|unable to (get|verify)|certificate/i);
      await bad.end().catch(() => {});

      const sql = postgres({
        host: "127.0.0.1",
        port: s.port,
        user: "postgres",
        database: "postgres",
        ssl: "require",
        max: 2,
        onnotice: () => {},
      });
      try {
        const rows = await sql`select 'js' as v, ${7}::int as n`;
        expect(rows.map((r) => ({ ...r }))).toEqual([{ v: "js", n: 7 }]);
      } finally {
        await sql.end();
      }
    });

    test("hostssl refuses a plain connection and hostnossl an SSL one, with PostgreSQL's 28000 texts", async () => {
      const s = await server();
      const plain = await psql(s, [conninfo(s, "sslmode=disable"), "-c", "select 1"]);
      expect(plain.code).not.toBe(0);
      expect(plain.err).toContain(
        'FATAL:  no pg_hba.conf entry for host "127.0.0.1", user "postgres", database "postgres", no encryption',
      );

      const c = new pg.Client({
        host: "127.0.0.1",
        port: s.port,
        user: "postgres",
        database: "postgres",
      });
      c.on("error", () => {});
      const err = await c.connect().then(() => null, (e: Error & { code?: string }) => e);
      expect(err?.code).toBe("28000");
      await c.end().catch(() => {});

      const sslOnly = await psql(s, [
        conninfo(s, "sslmode=require", "plainonly"),
        "-c",
        "select 1",
      ]);
      expect(sslOnly.err).toContain(
        'no pg_hba.conf entry for host "127.0.0.1", user "plainonly", database "postgres", SSL encryption',
      );
      const plainOk = await psql(s, [
        conninfo(s, "sslmode=disable", "plainonly"),
        "-c",
        "select current_user",
      ]);
      expect(plainOk.err).toBe("");
      expect(plainOk.out.trim()).toBe("plainonly");
    });

    test("cert and clientcert=verify-full: a client certificate whose CN is the role logs in; another CN or none does not", async () => {
      const s = await server();
      const alice = certs.client("alice");
      const ok = await psql(s, [
        conninfo(s, `sslmode=require sslcert=${alice.cert} sslkey=${alice.key}`, "alice"),
        "-c",
        "select current_user",
      ]);
      expect(ok.err).toBe("");
      expect(ok.out.trim()).toBe("alice");

      const bob = certs.client("bob");
      const wrongCn = await psql(s, [
        conninfo(s, `sslmode=require sslcert=${bob.cert} sslkey=${bob.key}`, "alice"),
        "-c",
        "select 1",
      ]);
      expect(wrongCn.err).toContain('FATAL:  certificate authentication failed for user "alice"');

      const none = await psql(s, [conninfo(s, "sslmode=require", "alice"), "-c", "select 1"]);
      expect(none.err).toContain("FATAL:  connection requires a valid client certificate");

      // clientcert=verify-full: the password and a certificate naming the role.
      const carol = certs.client("carol");
      const env = { PGPASSWORD: "c" };
      const both = await psql(s, [
        conninfo(s, `sslmode=require sslcert=${carol.cert} sslkey=${carol.key}`, "carol"),
        "-c",
        "select current_user",
      ], { env });
      expect(both.err).toBe("");
      expect(both.out.trim()).toBe("carol");
      const notHers = await psql(s, [
        conninfo(s, `sslmode=require sslcert=${bob.cert} sslkey=${bob.key}`, "carol"),
        "-c",
        "select 1",
      ], { env });
      expect(notHers.err).toContain('FATAL:  password authentication failed for user "carol"');
    });

    test("SCRAM-SHA-256-PLUS: psql with channel_binding=require logs in over SSL", async () => {
      const s = await server();
      const env = { PGPASSWORD: "pw+" };
      const plus = await psql(
        s,
        [conninfo(s, "sslmode=require channel_binding=require", "scram"), "-c", "select 'bound'"],
        { env },
      );
      expect(plus.err).toBe("");
      expect(plus.out.trim()).toBe("bound");
      const wrong = await psql(
        s,
        [conninfo(s, "sslmode=require channel_binding=require", "scram"), "-c", "select 1"],
        { env: { PGPASSWORD: "nope" } },
      );
      expect(wrong.err).toContain('password authentication failed for user "scram"');
    });

    test("PostgreSQL 17 direct SSL on the same port, and the protocol violations around SSLRequest", async () => {
      const s = await server();
      const direct = await directSsl(s, { alpn: true });
      expect(direct.alpn).toBe("postgresql");
      expect(direct.first).toBe("R"); // AuthenticationOk (trust)

      // Without ALPN, PostgreSQL 17 closes a direct SSL connection.
      const noAlpn = await directSsl(s, { alpn: false });
      expect(noAlpn.first).toBeNull();
      await s.waitForLog(
        /received direct SSL connection request without ALPN protocol negotiation extension/,
      );

      // A second SSLRequest inside the TLS session falls through to the
      // version check, as in PostgreSQL.
      const second = await sslTwice(s);
      expect(second.C).toBe("0A000");
      expect(second.M).toBe("unsupported frontend protocol 1234.5679: server supports 3.0 to 3.0");

      // Not TLS after the 'S': the handshake fails, the backend logs why and closes.
      const from = s.log.length;
      const garbage = await rawSslThen(s, new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
      expect(garbage.closed).toBe(true);
      await s.waitForLog(/LOG: {2}could not accept SSL connection: /, { from });

      // Bytes sent after the SSLRequest, before the handshake, are refused.
      const injected = await rawExchange(
        s,
        Buffer.concat([SSL_REQUEST, startupPacket({ user: "postgres", database: "postgres" })]),
      );
      expect(String.fromCharCode(injected.data[0]!)).toBe("S");
      expect(String.fromCharCode(injected.data[1]!)).toBe("E");
      const fields = errorFields(injected.data.subarray(6));
      expect(fields.C).toBe("08P01");
      expect(fields.M).toBe("received unencrypted data after SSL request");
    });
  });
}
