/**
 * A SET inside a transaction block takes no snapshot, in PostgreSQL as here:
 * SET TRANSACTION ISOLATION LEVEL, READ WRITE or SNAPSHOT may follow it in
 * the block, before the block's first query. pgts reads statement_timeout
 * back after a SET in a block (querycancel.ts); with a SELECT that read set
 * the transaction's first snapshot, and the client's SET TRANSACTION then
 * failed with 25001 "must be called before any query". node-postgres, one
 * statement per Query, under the default server.
 */

import { describe, expect, test } from "bun:test";
import { pgClient, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";

useSqlServers({ timeoutMs: 90_000 });

const one = async (c: Awaited<ReturnType<typeof pgClient>>, sql: string) =>
  Object.values((await c.query(sql)).rows[0] ?? {})[0];

describe("default server", () => {
  const server = sharedServer({});

  test("SET TRANSACTION READ WRITE after SET TRANSACTION READ ONLY", async () => {
    const a = await pgClient(server());
    await a.query("BEGIN");
    await a.query("SET TRANSACTION READ ONLY");
    await a.query("SET TRANSACTION READ WRITE");
    expect(await one(a, "SHOW transaction_read_only")).toBe("off");
    await a.query("COMMIT");
    await a.end();
  });

  test("SET TRANSACTION ISOLATION LEVEL after SET LOCAL and after another SET TRANSACTION", async () => {
    const a = await pgClient(server());
    await a.query("BEGIN");
    await a.query("SET LOCAL work_mem = '8MB'");
    await a.query("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE");
    expect(await one(a, "SHOW transaction_isolation")).toBe("serializable");
    await a.query("COMMIT");
    await a.query("BEGIN");
    await a.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    await a.query("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE");
    expect(await one(a, "SHOW transaction_isolation")).toBe("serializable");
    await a.query("COMMIT");
    await a.end();
  });

  test("SET LOCAL statement_timeout in the block still applies, and SET TRANSACTION may follow it", async () => {
    const a = await pgClient(server());
    await a.query("BEGIN");
    await a.query("SET LOCAL statement_timeout = '150ms'");
    await a.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    const err = await a.query("select pg_sleep(10)").then(
      () => null,
      (e: { code?: string }) => e.code,
    );
    expect(err).toBe("57014");
    await a.query("ROLLBACK");
    await a.end();
  });
});
