/**
 * A Rails application through ActiveRecord 6.1 and the pg gem (Debian's
 * packages) against the embedded engine (tests/fixtures/ruby/pgts_activerecord.rb):
 * a migration with JSON and array columns and a unique index, its
 * prepared statements, a unique violation rolled back, four threads on the
 * connection pool, advisory locks, schema reflection and SELECT … FOR
 * UPDATE. The same program against PostgreSQL 15 prints the same lines.
 */

import { describe, expect, test } from "bun:test";
import { ACTIVERECORD_LINES, rubyActiveRecord, runActiveRecord } from "../../helpers/ruby.ts";
import { sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers();

const ar = rubyActiveRecord();
if (ar.ruby === null) console.warn(`skipping the ActiveRecord tests: ${ar.why}`);

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });
    test.skipIf(ar.ruby === null)(
      "an ActiveRecord application runs as against PostgreSQL",
      async () => {
        expect(await runActiveRecord(ar.ruby!, server().port)).toEqual(ACTIVERECORD_LINES);
      },
    );
  });
}
