/**
 * Python applications through psycopg 3, psycopg2 and asyncpg against pgts
 * as a transaction pooler in front of PostgreSQL 15, with fewer upstream
 * connections than the applications': psycopg 3's server-side prepared
 * statements and the DEALLOCATE ALL of its rollback, asyncpg's named
 * statements, binary COPY and pool, LISTEN, statement_timeout
 * (tests/fixtures/python/pgts_python.py). The same program run against
 * PostgreSQL 15 directly prints the same lines, and they are the ones the
 * embedded engine's test expects (tests/e2e/sql/python_applications_run_unchanged).
 * So does the Django application (tests/fixtures/python/pgts_django.py).
 */

import { beforeAll, expect, test } from "bun:test";
import {
  DJANGO_LINES,
  PYTHON_LINES,
  pythonDrivers,
  runDjango,
  runPython,
} from "../../helpers/python.ts";
import {
  PgtsFront,
  UPSTREAM_PASSWORD,
  UpstreamPostgres,
  useUpstreamServers,
} from "../../helpers/upstream.ts";

useUpstreamServers({ timeoutMs: 90_000 });

const drivers = pythonDrivers();
if (drivers.python === null) console.warn(`skipping the Python tests: ${drivers.why}`);

let upstream: UpstreamPostgres;
let front: PgtsFront;

beforeAll(async () => {
  if (drivers.python === null) return;
  upstream = await UpstreamPostgres.start();
  front = await PgtsFront.start(upstream.url(), {
    adapter: "inproc",
    settings: { pool_mode: "transaction", default_pool_size: "2" },
  });
}, 90_000);

test.skipIf(drivers.python === null)(
  "PostgreSQL 15 directly: the program's lines (the reference)",
  async () => {
    const lines = await runPython(drivers.python!, {
      host: "127.0.0.1",
      port: upstream.port,
      user: "postgres",
      password: UPSTREAM_PASSWORD,
    });
    expect(lines).toEqual(PYTHON_LINES);
  },
);

test.skipIf(drivers.python === null)(
  "through pgts's transaction pool of two connections: the same lines",
  async () => {
    const lines = await runPython(drivers.python!, {
      host: front.host,
      port: front.port,
      user: "postgres",
      password: UPSTREAM_PASSWORD,
    });
    expect(lines).toEqual(PYTHON_LINES);
  },
);

for (
  const [where, database] of [["PostgreSQL 15 directly", "django_direct"], [
    "through the transaction pool",
    "django_pooled",
  ]] as const
) {
  test.skipIf(drivers.python === null)(
    `a Django application, ${where}: the lines of the embedded engine's test`,
    async () => {
      const made = await upstream.psql(`create database ${database}`);
      if (made.code !== 0) throw new Error(made.err);
      const direct = database === "django_direct";
      const lines = await runDjango(drivers.python!, {
        host: direct ? "127.0.0.1" : front.host,
        port: direct ? upstream.port : front.port,
        user: "postgres",
        password: UPSTREAM_PASSWORD,
        database,
      });
      expect(lines).toEqual(DJANGO_LINES);
    },
    60_000,
  );
}
