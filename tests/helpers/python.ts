/**
 * Runs tests/fixtures/python/pgts_python.py, Python applications' use of
 * psycopg 3, psycopg2 and asyncpg, and pgts_django.py, a Django 3.2
 * application, against a server. scripts/ensure-python.sh installs the
 * drivers and Django from Debian when they are missing.
 */

import { join } from "node:path";
import { ensured, programLines, ROOT } from "./programs.ts";

/** The interpreter that has the drivers, or null (and why) when they cannot be installed here. */
export function pythonDrivers(): { python: string | null; why: string } {
  const r = ensured("ensure-python.sh");
  return { python: r.path, why: r.why };
}

/** The lines pgts_python.py printed; throws with its output when it failed. */
export function runPython(
  python: string,
  target: { host: string; port: number; user: string; password?: string },
): Promise<string[]> {
  return programLines(
    [
      python,
      join(ROOT, "tests/fixtures/python/pgts_python.py"),
      target.host,
      String(target.port),
      target.user,
    ],
    // libpq (psycopg) and asyncpg both read it.
    target.password === undefined ? {} : { PGPASSWORD: target.password },
  );
}

/** The lines pgts_django.py printed against `database` (empty, made by the caller). */
export function runDjango(
  python: string,
  target: { host: string; port: number; user: string; password?: string; database: string },
): Promise<string[]> {
  return programLines(
    [
      python,
      join(ROOT, "tests/fixtures/python/pgts_django.py"),
      target.host,
      String(target.port),
      target.user,
      target.database,
    ],
    {
      PYTHONDONTWRITEBYTECODE: "1",
      ...(target.password === undefined ? {} : { PGPASSWORD: target.password }),
    },
  );
}

/** What pgts_django.py prints against PostgreSQL 15 (checked as PYTHON_LINES are). */
export const DJANGO_LINES = [
  "count: 5",
  'aggregate: [{"name": "ann", "n": 5, "s": "99.90"}, {"name": "bob", "n": 0, "s": null}]',
  'json: ["ann"]',
  'array: ["ann"]',
  'integrity: "rolled back"',
  "after: false",
  'unique in savepoint: "rolled back"',
  'price: "10.99"',
  'for update: ["t2", "t3"]',
  "iterator: 5",
  "auth: true",
  'tz: "UTC"',
  "threads: [0, 1, 2, 3]",
  'raw: ["w0", "w1", "w2", "w3"]',
  "migrations: 15",
  "cascade: 0",
];

/**
 * What pgts_python.py prints against PostgreSQL 15 (run against it directly
 * by tests/e2e/upstream/python_through_the_transaction_pool.test.ts).
 */
export const PYTHON_LINES = [
  "psycopg rolled back 22012",
  "psycopg after rollback 50",
  "psycopg copy out [('1', 'v0'), ('2', 'v1')]",
  "psycopg named cursor 150",
  "psycopg withhold cursor 1 [2, 3, 4, 5]",
  "psycopg pipeline 20",
  "psycopg notify hello",
  "psycopg2 execute_values 100",
  "psycopg2 named cursor 30",
  "psycopg2 copy_expert 2",
  "psycopg2 error 42P01",
  "asyncpg row n7 10.50 ['a', 'b'] {\"i\": 7} b'\\x00\\x01'",
  "asyncpg copy COPY 500 600",
  "asyncpg rolled back n1",
  "asyncpg cursor 600",
  "asyncpg prepared 5",
  "asyncpg notify ['hi']",
  "asyncpg pool 1560",
  "asyncpg server_settings [('py_schema, public', '8MB'), ('py_schema, public', '8MB'), ('py_schema, public', '8MB')]",
  "asyncpg timeout 57014",
];
