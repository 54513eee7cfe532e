/**
 * A client that parses and describes a statement up to a Flush, then takes
 * its time before it binds (postgres.js 4 does so for every new statement,
 * and may look up the types it learnt on another connection first), keeps
 * no other session waiting, as a PostgreSQL backend that has only parsed
 * keeps no other backend waiting. Before, the session held the engine
 * until its Sync: the other connection waited, and after
 * pgts.engine_hold_timeout the first was ended (FATAL 25P03), which is how
 * Drizzle on postgres.js 4 failed its first insert. The same for a Close
 * with no Sync after it (pg-cursor's close of a failed cursor): PostgreSQL
 * starts no transaction for it. Hand-built bytes
 * (tests/helpers/describe-first.ts).
 */

import { describe, test } from "bun:test";
import {
  boundAtOnce,
  closeAfterSync,
  describedThenBound,
  describeInsideABlock,
  failedDescribeSkipsToSync,
  type Target,
} from "../../helpers/describe-first.ts";
import {
  pgClient,
  RawConnection,
  sharedServer,
  startSqlServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers();

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });
    const target: Target = {
      raw: async () => {
        const c = await RawConnection.open(server());
        await c.startup();
        return c;
      },
      client: () => pgClient(server()),
    };

    test("Parse and Describe up to a Flush; another session runs and parses; the Bind that follows runs the statement", () =>
      describedThenBound(target));
    test("the first session of a new server: Parse and Describe up to a Flush, then at once the Bind, runs the statement", async () => {
      // Its own server: pgts reads a server's first session's settings
      // after its first exec, with a Query (26000 before).
      const fresh = await startSqlServer(adapter === undefined ? {} : { adapter });
      await boundAtOnce({
        raw: async () => {
          const c = await RawConnection.open(fresh);
          await c.startup();
          return c;
        },
        client: () => pgClient(fresh),
      });
    });
    test("an error up to a Flush skips the client's messages to its Sync, as PostgreSQL skips them", () =>
      failedDescribeSkipsToSync(target));
    test("inside a transaction block the describe stays in the block", () =>
      describeInsideABlock(target));
    test("a Close with no Sync after it, alone or after a Sync, keeps no one waiting", () =>
      closeAfterSync(target));
  });
}
