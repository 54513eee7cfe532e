/**
 * Python applications through psycopg 3, psycopg2 and asyncpg (Debian's
 * packages), against the embedded engine (tests/fixtures/python/pgts_python.py):
 * psycopg 3's server-side prepared statements and the DEALLOCATE ALL it
 * sends through the extended protocol at a rollback, its COPY both ways,
 * named cursor, pipeline mode and notifications; psycopg2's execute_values,
 * named cursor and copy_expert; asyncpg's binary types, its
 * copy_records_to_table (the COPY's data sent with the Query, before the
 * CopyInResponse), transactions, cursor, prepared statement, notifications,
 * pool and statement_timeout. The same program against PostgreSQL 15 prints
 * the same lines.
 */

import { describe, expect, test } from "bun:test";
import { PYTHON_LINES, pythonDrivers, runPython } from "../../helpers/python.ts";
import { sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers();

const drivers = pythonDrivers();
if (drivers.python === null) console.warn(`skipping the Python tests: ${drivers.why}`);

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });
    test.skipIf(drivers.python === null)(
      "psycopg 3, psycopg2 and asyncpg applications run as against PostgreSQL",
      async () => {
        const s = server();
        const lines = await runPython(drivers.python!, {
          host: s.host,
          port: s.port,
          user: "postgres",
        });
        expect(lines).toEqual(PYTHON_LINES);
      },
    );
  });
}
