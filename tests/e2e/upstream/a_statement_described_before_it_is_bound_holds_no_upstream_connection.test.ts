/**
 * Through the transaction pool, a client that parses and describes a
 * statement up to a Flush, then takes its time before it binds (postgres.js
 * 4 does so, and may look the types up on another connection first), holds
 * no upstream connection meanwhile: with a pool of one, another client is
 * served, and the Bind that follows finds the client's unnamed statement on
 * whichever connection serves it. Before, the pool's one connection stayed
 * with the first client and the other waited until query_wait_timeout;
 * Drizzle on postgres.js 4 hung so. Hand-built bytes
 * (tests/helpers/describe-first.ts), against PostgreSQL 15.
 */

import { beforeAll, test } from "bun:test";
import {
  describedThenBound,
  describeInsideABlock,
  failedDescribeSkipsToSync,
  type Target,
} from "../../helpers/describe-first.ts";
import { type PgtsServer, RawConnection } from "../../helpers/pgts-sql.ts";
import { PgtsFront, UpstreamPostgres, useUpstreamServers } from "../../helpers/upstream.ts";

useUpstreamServers({ timeoutMs: 60_000 });

let front: PgtsFront;

beforeAll(async () => {
  const upstream = await UpstreamPostgres.start();
  front = await PgtsFront.start(upstream.url(), {
    adapter: "inproc",
    settings: { pool_mode: "transaction", default_pool_size: "1", query_wait_timeout: "10s" },
  });
}, 60_000);

const target: Target = {
  raw: async () => {
    const c = await RawConnection.open(front as unknown as PgtsServer);
    await c.startup();
    return c;
  },
  client: () => front.client(),
};

test("a pool of one: Parse and Describe up to a Flush; another client runs and parses; the Bind that follows runs the statement", () =>
  describedThenBound(target));
test("an error up to a Flush skips the client's messages to its Sync, as PostgreSQL skips them", () =>
  failedDescribeSkipsToSync(target));
test("inside a transaction block the describe keeps its connection", () =>
  describeInsideABlock(target));
