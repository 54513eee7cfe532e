/**
 * CancelRequests and statement_timeout arriving at random while sessions'
 * statements wait behind one another in the engine's pipeline (channel.ts,
 * workerexecutor.ts: a waiting statement is taken back from the channel
 * unless the engine's Worker has it). Every INSERT that was answered 57014
 * left no row and every one answered INSERT left its row, no other error
 * came, and the engine serves afterwards. Before 2026-12-06 21:50 UTC a
 * statement sent after a withdrawn one could be written over the withdrawn
 * one's slot before the Worker took it, and the engine ran statements out
 * of turn, then held one for ever (this storm wedged it within seconds).
 */

import { expect, test } from "bun:test";
import {
  pgClient,
  sendCancelRequest,
  sharedServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";

useSqlServers({ timeoutMs: 90_000 });
const server = sharedServer();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs `f` again while it ends with 57014 (a statement_timeout of 25 ms on a loaded machine). */
async function untilDone<T>(f: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await f();
    } catch (e) {
      if ((e as { code?: string }).code !== "57014") throw e;
    }
  }
}

for (
  const [name, options] of [
    ["cancels", undefined],
    ["cancels and statement_timeout", "-c statement_timeout=25"],
  ] as const
) {
  test(`a storm of ${name} on statements waiting behind one another keeps every answer true`, async () => {
    const as = options === undefined ? {} : { options };
    const admin = await pgClient(server(), as);
    const table = `storm_${name.length}`;
    await untilDone(() => admin.query(`create table ${table} (id int primary key)`));
    const clients = await Promise.all([1, 2, 3, 4].map(() => pgClient(server(), as)));
    // Sessions that have run a statement are taken early behind another's.
    for (const c of clients) await untilDone(() => c.query("select 1"));
    let stop = false;
    // Statements the others wait behind: two short sleeps, each within the timeout.
    const slow = (async () => {
      while (!stop) {
        await untilDone(() => admin.query("select pg_sleep(0.008); select pg_sleep(0.008)"));
      }
    })();
    const canceller = (async () => {
      while (!stop) {
        const c = clients[Math.floor(Math.random() * clients.length)]!;
        const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
        await sendCancelRequest(server(), processID, secretKey);
        await sleep(Math.random() * 4);
      }
    })();
    const answered = new Set<number>();
    const refused = new Set<number>();
    const other: string[] = [];
    await Promise.all(clients.map(async (c, k) => {
      for (let j = 0; j < 80; j++) {
        const id = k * 1000 + j;
        try {
          await c.query(`insert into ${table} values (${id})`);
          answered.add(id);
        } catch (e) {
          const err = e as { code?: string; message: string };
          if (err.code === "57014") refused.add(id);
          else other.push(`${id}: ${err.code} ${err.message}`);
        }
      }
    }));
    stop = true;
    await Promise.all([slow, canceller]);
    expect(other).toEqual([]);
    expect(answered.size + refused.size).toBe(320);
    expect(refused.size).toBeGreaterThan(0);
    const rows = (await untilDone(() => admin.query(`select id from ${table} order by id`))).rows
      .map((r) => r.id);
    expect(rows).toEqual([...answered].sort((a, b) => a - b));
  });
}
