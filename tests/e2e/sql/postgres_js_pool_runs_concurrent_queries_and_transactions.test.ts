/**
 * postgres.js (a pool of four connections) against a real pgts server:
 * 200 queries in flight at once all get their own answers, and concurrent
 * `sql.begin` transactions that increment one counter lose no update.
 */

import { afterAll, expect, test } from "bun:test";
import postgres from "postgres";
import { sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";

useSqlServers();
const server = sharedServer();
const pools: postgres.Sql[] = [];
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end({ timeout: 1 }).catch(() => {})));
});

function pool(): postgres.Sql {
  const s = server();
  const sql = postgres({
    host: s.host,
    port: s.port,
    user: "postgres",
    database: "postgres",
    max: 4,
    onnotice: () => {},
    connect_timeout: 10,
  });
  pools.push(sql);
  return sql;
}

test("a pool of 4 answers 200 concurrent queries, each with its own result", async () => {
  const sql = pool();
  const results = await Promise.all(
    Array.from(
      { length: 200 },
      (_, i) => sql`select ${i}::int as i, md5(${String(i)}) as h, pg_sleep(0)`.then((r) => r[0]!),
    ),
  );
  for (let i = 0; i < 200; i++) {
    expect(results[i]!.i).toBe(i);
    expect(results[i]!.h).toBe(new Bun.CryptoHasher("md5").update(String(i)).digest("hex"));
  }
  // The pool opened its four connections: four sessions, each with a backend of its own.
  const [row] = await sql`select count(distinct pid)::int as n from pg_stat_activity
    where datname = current_database() and pid is not null`;
  expect(row!.n).toBeGreaterThanOrEqual(4);
});

test("concurrent sql.begin transactions incrementing one counter reach the exact total", async () => {
  const sql = pool();
  await sql`create table counter (id int primary key, n int not null)`;
  await sql`insert into counter values (1, 0)`;
  const workers = 4;
  const perWorker = 25;
  await Promise.all(
    Array.from({ length: workers * perWorker }, () =>
      sql.begin(async (tx) => {
        const [row] = await tx`select n from counter where id = 1 for update`;
        await tx`update counter set n = ${row!.n + 1} where id = 1`;
      })),
  );
  const [final] = await sql`select n from counter where id = 1`;
  expect(final!.n).toBe(workers * perWorker);
});

test("a failed transaction rolls back and the pool keeps serving", async () => {
  const sql = pool();
  await sql`create table ledger (v int check (v >= 0))`;
  const failures = await Promise.allSettled(
    Array.from({ length: 20 }, (_, i) =>
      sql.begin(async (tx) => {
        await tx`insert into ledger values (${i})`;
        if (i % 2 === 1) await tx`insert into ledger values (-1)`;
      })),
  );
  const rejected = failures.filter((f) => f.status === "rejected") as PromiseRejectedResult[];
  expect(rejected.length).toBe(10);
  expect(rejected.every((r) => (r.reason as { code?: string }).code === "23514")).toBe(true);
  const [{ count }] = await sql`select count(*)::int as count from ledger`;
  expect(count).toBe(10);
});
