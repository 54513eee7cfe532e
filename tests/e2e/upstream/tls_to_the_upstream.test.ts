/**
 * TLS from pgts to an upstream PostgreSQL 15 running with ssl = on and a
 * certificate signed by a test CA: sslmode verify-full succeeds with the
 * right root and host name (and binds SCRAM to the channel, -PLUS), fails
 * with another CA or another host name; disable stays plain, and the
 * default (prefer) encrypts. Session and transaction mode alike.
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import { TestCertificates } from "../../helpers/tls.ts";
import {
  PgtsFront,
  UPSTREAM_PASSWORD,
  UPSTREAM_USER,
  UpstreamPostgres,
  useUpstreamServers,
} from "../../helpers/upstream.ts";

useUpstreamServers({ timeoutMs: 90_000 });

let certs: TestCertificates;
let upstream: UpstreamPostgres;

beforeAll(async () => {
  certs = new TestCertificates();
  upstream = await UpstreamPostgres.start({
    ssl: { cert: certs.path("server.crt"), key: certs.path("server.key") },
  });
}, 90_000);

afterAll(() => certs?.remove());

/** The engine URL: `host` is the name checked; the address dialled is 127.0.0.1. */
function url(host: string, query: string): string {
  const password = encodeURIComponent(UPSTREAM_PASSWORD);
  return `postgres://${UPSTREAM_USER}:${password}@${host}:${upstream.port}/postgres?hostaddr=127.0.0.1&${query}`;
}

/** Whether the upstream connection serving this client is encrypted, and how. */
async function sslOfSession(front: PgtsFront): Promise<{ ssl: boolean; version: string | null }> {
  const c = await front.client();
  try {
    const r = await c.query(
      "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()",
    );
    return r.rows[0];
  } finally {
    await c.end();
  }
}

test("verify-full with the CA and the certificate's host name: encrypted, SCRAM bound to the channel", async () => {
  const [session, pooled] = await Promise.all([
    PgtsFront.start(
      url(
        "localhost",
        `sslmode=verify-full&sslrootcert=${certs.path("ca.crt")}&channel_binding=require`,
      ),
    ),
    PgtsFront.start(
      url(
        "localhost",
        `sslmode=verify-full&sslrootcert=${certs.path("ca.crt")}&channel_binding=require`,
      ),
      { settings: { pool_mode: "transaction", default_pool_size: "2" } },
    ),
  ]);
  for (const front of [session, pooled]) {
    const s = await sslOfSession(front);
    expect(s.ssl).toBe(true);
    expect(s.version).toMatch(/^TLSv1\.[23]$/);
  }
});

test("verify-ca with another CA's root fails the client's connection with 08001", async () => {
  const front = await PgtsFront.start(
    url("localhost", `sslmode=verify-ca&sslrootcert=${certs.path("other-ca.crt")}`),
  );
  const e = await front.client().catch((x) => x);
  expect(e.code).toBe("08001");
  expect(e.message).toMatch(
    /^could not connect to the upstream server: SSL error: certificate verify failed/,
  );
});

test("verify-full with a host name the certificate is not for fails with libpq's message", async () => {
  const front = await PgtsFront.start(
    url("wrong.example", `sslmode=verify-full&sslrootcert=${certs.path("ca.crt")}`),
  );
  const e = await front.client().catch((x) => x);
  expect(e.code).toBe("08001");
  expect(e.message).toBe(
    'could not connect to the upstream server: server certificate for "localhost" (and 1 other name) does not match host name "wrong.example"',
  );
});

test("sslmode=disable stays plain; the default (prefer) encrypts", async () => {
  const [plain, preferred] = await Promise.all([
    PgtsFront.start(url("localhost", "sslmode=disable")),
    PgtsFront.start(upstream.url()),
  ]);
  expect((await sslOfSession(plain)).ssl).toBe(false);
  expect((await sslOfSession(preferred)).ssl).toBe(true);
});

test("verify-ca without its root file says so", async () => {
  const front = await PgtsFront.start(
    url("localhost", `sslmode=verify-ca&sslrootcert=${certs.path("missing.crt")}`),
  );
  const e = await front.client().catch((x) => x);
  expect(e.code).toBe("08001");
  expect(e.message).toBe(
    `could not connect to the upstream server: root certificate file "${
      certs.path("missing.crt")
    }" does not exist`,
  );
});
