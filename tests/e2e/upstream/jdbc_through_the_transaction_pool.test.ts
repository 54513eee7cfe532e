/**
 * A Java application through PostgreSQL's JDBC driver against pgts as a
 * transaction pooler in front of PostgreSQL 15, with fewer upstream
 * connections than the application's: its server-prepared statements
 * (prepareThreshold=1: named statements S_n Parsed once, Bound on whichever
 * connection serves the next transaction), a batch, SERIALIZABLE set for the
 * session and rolled back, metadata, Statement.cancel() reaching the
 * upstream backend, four connections at once. The same program run against
 * PostgreSQL 15 directly prints the same lines.
 */

import { beforeAll, expect, test } from "bun:test";
import { JDBC_LINES, jdbcDriver, runJdbc } from "../../helpers/jdbc.ts";
import {
  PgtsFront,
  UPSTREAM_PASSWORD,
  UpstreamPostgres,
  useUpstreamServers,
} from "../../helpers/upstream.ts";

useUpstreamServers({ timeoutMs: 90_000 });

const driver = jdbcDriver();
if (driver.jar === null) console.warn(`skipping the JDBC tests: ${driver.why}`);

let upstream: UpstreamPostgres;
let front: PgtsFront;

beforeAll(async () => {
  if (driver.jar === null) return;
  upstream = await UpstreamPostgres.start();
  front = await PgtsFront.start(upstream.url(), {
    adapter: "inproc",
    settings: { pool_mode: "transaction", default_pool_size: "2" },
  });
}, 90_000);

test.skipIf(driver.jar === null)(
  "PostgreSQL 15 directly: the program's lines (the reference)",
  async () => {
    const lines = await runJdbc(driver.jar!, {
      host: "127.0.0.1",
      port: upstream.port,
      user: "postgres",
      password: UPSTREAM_PASSWORD,
    });
    expect(lines).toEqual(JDBC_LINES);
  },
);

test.skipIf(driver.jar === null)(
  "through pgts's transaction pool of two connections: the same lines",
  async () => {
    const lines = await runJdbc(driver.jar!, {
      host: front.host,
      port: front.port,
      user: "postgres",
      password: UPSTREAM_PASSWORD,
    });
    expect(lines).toEqual(JDBC_LINES);
  },
);
