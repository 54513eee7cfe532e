/**
 * A PHP application through PDO's PostgreSQL driver (Debian's php-pgsql),
 * against the embedded engine (tests/fixtures/php/pgts_pdo.php): native
 * prepared statements reused and then deallocated by PDO (SQL DEALLOCATE of
 * a protocol-level statement), bytea, jsonb and arrays, a rollback, 23505,
 * emulated prepares, lastInsertId (currval), COPY both ways, LISTEN/NOTIFY
 * and large objects. The same program against PostgreSQL 15 prints the
 * same lines.
 */

import { describe, expect, test } from "bun:test";
import { PDO_LINES, phpPdo, runPdo } from "../../helpers/php.ts";
import { pgClient, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers();

const pdo = phpPdo();
if (pdo.php === null) console.warn(`skipping the PHP test: ${pdo.why}`);

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });
    test.skipIf(pdo.php === null)("a PHP PDO application runs as against PostgreSQL", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("create database php_app");
      await admin.end();
      const lines = await runPdo(pdo.php!, {
        host: s.host,
        port: s.port,
        user: "postgres",
        database: "php_app",
      });
      expect(lines).toEqual(PDO_LINES);
    });
  });
}
