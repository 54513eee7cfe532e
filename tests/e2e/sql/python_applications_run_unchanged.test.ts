/**
 * Python applications through psycopg 3, psycopg2 and asyncpg (Debian's
 * packages), against the embedded engine (tests/fixtures/python/pgts_python.py):
 * psycopg 3's server-side prepared statements and the DEALLOCATE ALL it
 * sends through the extended protocol at a rollback, its COPY both ways,
 * named cursor, pipeline mode and notifications; psycopg2's execute_values,
 * named cursor and copy_expert; asyncpg's binary types, its
 * copy_records_to_table (the COPY's data sent with the Query, before the
 * CopyInResponse), transactions, cursor, prepared statement, notifications,
 * pool and statement_timeout. And a Django 3.2 application
 * (tests/fixtures/python/pgts_django.py): migrations, JSON and array fields,
 * savepoints, select_for_update, a server-side cursor, four threads with
 * their own connections. The same programs against PostgreSQL 15 print the
 * same lines.
 */

import { describe, expect, test } from "bun:test";
import {
  DJANGO_LINES,
  PYTHON_LINES,
  pythonDrivers,
  runDjango,
  runPython,
} from "../../helpers/python.ts";
import { pgClient, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";
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
    test.skipIf(drivers.python === null)(
      "a Django application runs as against PostgreSQL",
      async () => {
        const s = server();
        const admin = await pgClient(s);
        await admin.query("create database django_app");
        await admin.end();
        const lines = await runDjango(drivers.python!, {
          host: s.host,
          port: s.port,
          user: "postgres",
          database: "django_app",
        });
        expect(lines).toEqual(DJANGO_LINES);
      },
      60_000,
    );
  });
}
