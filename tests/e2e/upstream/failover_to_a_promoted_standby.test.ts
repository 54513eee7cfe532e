/**
 * Several upstream hosts with target_session_attrs, against a PostgreSQL 15
 * primary and a streaming standby made by `pg_basebackup -R`: read-write
 * sessions go to the primary, standby ones to the standby, and when the
 * primary stops and the standby is promoted (`pg_ctl promote`), the clients
 * of a transaction pool go on, on the new primary, without reconnecting.
 */

import { beforeAll, expect, test } from "bun:test";
import {
  PgtsFront,
  UPSTREAM_PASSWORD,
  UPSTREAM_USER,
  UpstreamPostgres,
  useUpstreamServers,
  waitFor,
} from "../../helpers/upstream.ts";

useUpstreamServers({ timeoutMs: 90_000 });

let primary: UpstreamPostgres;
let standby: UpstreamPostgres;

beforeAll(async () => {
  primary = await UpstreamPostgres.start();
  standby = await UpstreamPostgres.standbyOf(primary);
}, 90_000);

/** Both hosts, the standby listed first so that the choice is target_session_attrs's. */
function url(attrs: string): string {
  const password = encodeURIComponent(UPSTREAM_PASSWORD);
  return `postgres://${UPSTREAM_USER}:${password}@127.0.0.1:${standby.port},127.0.0.1:${primary.port}/postgres?target_session_attrs=${attrs}`;
}

test("read-write reaches the primary, standby the standby; after promote the pool's clients go on", async () => {
  const [writer, reader] = await Promise.all([
    PgtsFront.start(url("read-write"), {
      settings: { pool_mode: "transaction", default_pool_size: "2" },
    }),
    PgtsFront.start(url("standby")),
  ]);
  const r = await reader.client();
  const a = await writer.client();
  const b = await writer.client();
  try {
    const where = "select inet_server_port() as port, pg_is_in_recovery() as standby";
    expect((await a.query(where)).rows[0]).toEqual({ port: primary.port, standby: false });
    expect((await r.query(where)).rows[0]).toEqual({ port: standby.port, standby: true });
    await a.query("create table failover (n int); insert into failover values (1)");
    await waitFor("the row on the standby", async () => {
      const n = await r.query("select count(*)::int as n from failover").catch(() => null);
      return n?.rows[0].n === 1;
    });
    await r.end();

    await primary.stop("fast");
    await standby.promote();
    // The same clients, no reconnect: their next transactions open
    // connections to the host that is primary now.
    expect((await a.query(where)).rows[0]).toEqual({ port: standby.port, standby: false });
    await b.query("insert into failover values (2)");
    expect((await a.query("select count(*)::int as n from failover")).rows[0].n).toBe(2);
  } finally {
    await a.end();
    await b.end();
  }
});
