/**
 * The in-process ceiling: what the pgts engine itself serves when nothing
 * stands between the statements and it (no client socket, no backend
 * process, no engine socket). Sessions are the engine's own, opened on a
 * data directory like the engine child's, and driven by `clients` loops at
 * once, as pgbench drives its connections.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EngineSession } from "../../../src/core/engine/types.ts";
import { PARAMETERS } from "../../../src/core/guc/tables.ts";
import { initCluster, openEngine, setEngineCpuAffinity } from "../../../src/engines/pglite/mod.ts";
import { queryMessage } from "./client.ts";

export interface CeilingResult {
  /** Transactions per second, by placement and statement. */
  readonly [placement: string]: { readonly select1: number; readonly selectOnly: number };
}

/** pgbench -i -s 1 -I dtGvp, as SQL (server-side generate). */
export const PGBENCH_INIT = `
create table pgbench_history(tid int,bid int,aid int,delta int,mtime timestamp,filler char(22));
create table pgbench_tellers(tid int not null,bid int,tbalance int,filler char(84)) with (fillfactor=100);
create table pgbench_accounts(aid int not null,bid int,abalance int,filler char(84)) with (fillfactor=100);
create table pgbench_branches(bid int not null,bbalance int,filler char(88)) with (fillfactor=100);
insert into pgbench_branches(bid,bbalance) select bid, 0 from generate_series(1, 1) as bid;
insert into pgbench_tellers(tid,bid,tbalance) select tid, (tid - 1) / 10 + 1, 0 from generate_series(1, 10) as tid;
insert into pgbench_accounts(aid,bid,abalance,filler) select aid, (aid - 1) / 100000 + 1, 0, '' from generate_series(1, 100000) as aid;
alter table pgbench_branches add primary key (bid);
alter table pgbench_tellers add primary key (tid);
alter table pgbench_accounts add primary key (aid);
vacuum analyze;
`;

/** engine_spin_time's default, what `pgts start` gives its engine. */
const SPIN_US = Number(PARAMETERS.find((p) => p.name === "engine_spin_time")!.boot);
/** engine_cpu_affinity's default, likewise (cpuaffinity.ts). */
const CPU_AFFINITY = PARAMETERS.find((p) => p.name === "engine_cpu_affinity")!.boot === true;

async function drive(
  sessions: EngineSession[],
  seconds: number,
  next: () => Uint8Array,
): Promise<number> {
  const out = () => {};
  let n = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(sessions.map(async (s) => {
    while (performance.now() < end) {
      await s.exec(next(), out);
      n++;
    }
  }));
  return n / ((performance.now() - t0) / 1000);
}

export async function engineCeiling(
  options: { seconds: number; clients: number },
): Promise<CeilingResult> {
  const result: Record<string, { select1: number; selectOnly: number }> = {};
  const dir = mkdtempSync(join(tmpdir(), "pgts-ceiling-"));
  const data = join(dir, "pglite");
  const warm = Math.min(1, options.seconds / 4);
  try {
    await initCluster(data);
    setEngineCpuAffinity(CPU_AFFINITY);
    let initialised = false;
    for (const placement of ["worker", "inline"] as const) {
      // As the server opens it: its Worker polls for the next statement
      // for engine_spin_time before it sleeps (without, a third of the
      // statements found it asleep and SELECT 1 ran at ~40% of the rate).
      const engine = await openEngine(data, { placement, spinUs: SPIN_US });
      const sessions: EngineSession[] = [];
      for (let i = 0; i < options.clients; i++) {
        sessions.push(
          (await engine.startSession({
            pid: 1000 + i,
            user: "postgres",
            database: "postgres",
            params: { application_name: "pgbench" },
          })).session,
        );
      }
      if (!initialised) await sessions[0]!.exec(queryMessage(PGBENCH_INIT), () => {});
      initialised = true;
      const select1 = queryMessage("SELECT 1;");
      const selectOnly = () =>
        queryMessage(
          `SELECT abalance FROM pgbench_accounts WHERE aid = ${
            1 + Math.floor(Math.random() * 100000)
          };`,
        );
      await drive(sessions, warm, () => select1);
      const s1 = await drive(sessions, options.seconds, () => select1);
      await drive(sessions, warm, selectOnly);
      const so = await drive(sessions, options.seconds, selectOnly);
      result[placement] = { select1: s1, selectOnly: so };
      for (const s of sessions) await s.close();
      await engine.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}
