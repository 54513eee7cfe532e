/**
 * A Java application through PostgreSQL's JDBC driver (Debian's
 * libpostgresql-jdbc-java), against the embedded engine: server-prepared
 * statements from the first execution, a batch, common types, SERIALIZABLE
 * rolled back, DatabaseMetaData, Statement.cancel(), an error and going on,
 * four connections at once (tests/fixtures/jdbc/PgtsJdbc.java). The same
 * program against PostgreSQL 15 prints the same lines; the pool in front of
 * PostgreSQL is tests/e2e/upstream/jdbc_through_the_transaction_pool.test.ts.
 */

import { describe, expect, test } from "bun:test";
import { JDBC_LINES, jdbcDriver, runJdbc } from "../../helpers/jdbc.ts";
import { sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers();

const driver = jdbcDriver();
if (driver.jar === null) console.warn(`skipping the JDBC tests: ${driver.why}`);

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });
    test.skipIf(driver.jar === null)("a JDBC application runs as against PostgreSQL", async () => {
      const s = server();
      const lines = await runJdbc(driver.jar!, { host: s.host, port: s.port, user: "postgres" });
      expect(lines).toEqual(JDBC_LINES);
    });
  });
}
