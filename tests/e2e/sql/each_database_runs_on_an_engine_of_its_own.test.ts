/**
 * Each database of a cluster runs on an engine of its own: a statement in
 * one database does not hold up the sessions of another (while sessions of
 * the same database still take turns), an engine with no session for
 * engine_idle_timeout closes and its Worker goes with it, max_connections
 * counts the sessions of every database, and a crash of the engines'
 * process is the whole cluster's crash, after which every database serves
 * its committed data again.
 */

import { describe, expect, test } from "bun:test";
import { connectError, pgClient, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { type Adapter, engineChild } from "../../helpers/pgts.ts";
import { readdirSync, readFileSync } from "node:fs";

useSqlServers({ timeoutMs: 90_000 });

const CONF = [
  "engine_idle_timeout = 1s",
  "engine_hold_timeout = 0",
  "engine_wait_timeout = 60s",
  "max_connections = 4",
  "superuser_reserved_connections = 0",
  "log_min_messages = debug1",
  "",
].join("\n");

/**
 * The Worker threads of process `pid` (Bun names them "Worker", Deno "worker-N"): only
 * these, since the runtime starts and ends threads of its own (the garbage
 * collector's, the JIT's) at will.
 */
function workerThreads(pid: number): number {
  let n = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${task}/comm`, "utf8").trim();
      if (name === "Worker" || /^worker-\d+$/.test(name)) n++;
    } catch {
      // the thread ended meanwhile
    }
  }
  return n;
}

for (const adapter of [undefined, "subprocess"] as Array<Adapter | undefined>) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer({ conf: CONF, ...(adapter === undefined ? {} : { adapter }) });

    test("a session holding one database's engine holds up that database only", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("CREATE DATABASE par_a");
      await admin.query("CREATE DATABASE par_b");
      await admin.end();
      const a = await pgClient(s, { database: "par_a" });
      const a2 = await pgClient(s, { database: "par_a" });
      const b = await pgClient(s, { database: "par_b" });
      await Promise.all([a.query("SELECT 1"), a2.query("SELECT 1"), b.query("SELECT 1")]);

      // a holds par_a's engine (a transaction block): a2, in the same
      // database, waits for it; b, in another database, does not.
      await a.query("BEGIN");
      await a.query("SELECT 1");
      const order: string[] = [];
      const same = a2.query("SELECT current_database() AS db").then((r) => {
        order.push(`${r.rows[0].db} waited`);
      });
      const other = await b.query("SELECT current_database() AS db");
      order.push(`${other.rows[0].db} answered`);
      await a.query("COMMIT");
      await same;
      expect(order).toEqual(["par_b answered", "par_a waited"]);
      await Promise.all([a.end(), a2.end(), b.end()]);
    });

    test("max_connections counts the sessions of every database", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("CREATE DATABASE mc_a");
      await admin.query("CREATE DATABASE mc_b");
      const c1 = await pgClient(s, { database: "mc_a" });
      const c2 = await pgClient(s, { database: "mc_b" });
      const c3 = await pgClient(s, { database: "template1" });
      const refused = await connectError(s, { database: "mc_b" });
      expect(refused?.code).toBe("53300");
      expect(refused?.message).toBe("sorry, too many clients already");
      await Promise.all([admin.end(), c1.end(), c2.end(), c3.end()]);
    });

    test("an engine with no session closes after engine_idle_timeout and its Worker goes", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("CREATE DATABASE idle_db");
      // The engines' Workers are threads of the engine child's process, which
      // is the postmaster's own under the default adapter.
      const engine = adapter === "subprocess" ? engineChild(s.childPids()) : s.pid;
      expect(engine).toBeGreaterThan(0);
      const from = s.log.length;
      const c = await pgClient(s, { database: "idle_db" });
      await c.query("SELECT 1");
      const openThreads = workerThreads(engine);
      await c.end();
      await s.waitForLog(
        /closing the engine of database "idle_db" after 1000 ms without a session/,
        {
          from,
        },
      );
      // Its Worker's thread is gone. (The WASM memory it reserved, gigabytes
      // of address space, goes when the garbage collector frees it: seen in
      // VmSize within a second when the machine is quiet, not bounded in time
      // under load, so it is not asserted.)
      let closed = workerThreads(engine);
      for (let i = 0; i < 100 && closed >= openThreads; i++) {
        await new Promise((r) => setTimeout(r, 100));
        closed = workerThreads(engine);
      }
      expect(closed).toBeLessThan(openThreads);
      // And it opens again for the next client, with its data.
      const again = await pgClient(s, { database: "idle_db" });
      expect((await again.query("SELECT current_database() AS db")).rows[0].db).toBe("idle_db");
      await Promise.all([again.end(), admin.end()]);
    });

    // Only the subprocess adapter has an engine process to kill from outside.
    if (adapter === undefined) return;

    test("a killed engine process is the cluster's crash: every database's sessions end, then all serve their data", async () => {
      const s = server();
      const admin = await pgClient(s);
      await admin.query("CREATE DATABASE crash_a");
      await admin.query("CREATE DATABASE crash_b");
      const a = await pgClient(s, { database: "crash_a" });
      await a.query("CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)");
      const b = await pgClient(s, { database: "crash_b" });
      await b.query("CREATE TABLE kept (n int); INSERT INTO kept VALUES (2)");
      const engine = engineChild(s.childPids());
      // Never 0: process.kill(0) would kill this test runner's process group.
      expect(engine).toBeGreaterThan(0);
      const from = s.log.length;
      process.kill(engine, "SIGKILL");
      await s.waitForLog(/all server processes terminated; reinitializing/, { from });
      await s.waitForLog(/database system is ready to accept connections/, {
        from: s.log.indexOf("reinitializing", from),
      });
      for (const c of [a, b]) {
        expect(await c.query("SELECT 1").then(() => "served", () => "cut")).toBe("cut");
      }
      for (const [database, n] of [["crash_a", 1], ["crash_b", 2]] as const) {
        const c = await pgClient(s, { database });
        expect((await c.query("SELECT n FROM kept")).rows).toEqual([{ n }]);
        await c.end();
      }
    });
  });
}
