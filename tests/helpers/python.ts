/**
 * Runs tests/fixtures/python/pgts_python.py, Python applications' use of
 * psycopg 3, psycopg2 and asyncpg, against a server. scripts/ensure-python.sh
 * installs the drivers from Debian when they are missing.
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

/**
 * What pgts_python.py prints against PostgreSQL 15 (run against it directly
 * by tests/e2e/upstream/python_through_the_transaction_pool.test.ts).
 */
export const PYTHON_LINES = [
  "psycopg rolled back 22012",
  "psycopg after rollback 50",
  "psycopg copy out [('1', 'v0'), ('2', 'v1')]",
  "psycopg named cursor 150",
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
