/**
 * Many databases, side by side in one run:
 * - `CREATE DATABASE … TEMPLATE t` of a ~10 MB template on pgts (a copy of
 *   the template's PGlite cluster) and on PostgreSQL 15 (its default
 *   WAL_LOG strategy), rounds alternating, each followed by DROP DATABASE;
 * - pgts: two databases each under `pgbench -S -c 2` at once against one
 *   database under `pgbench -S -c 4` (each database has an engine of its
 *   own, so the two runs can use both CPUs);
 * - pgts: two CPU-bound statements at once, both in one database (one
 *   engine runs them one after the other) against one in each of two
 *   databases (two engines on two threads): the wall-clock time of the pair.
 *   pgbench's select-only load is mostly protocol work, pgbench's own and
 *   the front end's, which the two databases share; the CPU-bound pair shows
 *   the engines themselves running at once.
 * Run with
 *   ./node_modules/.bin/bun scripts/bench/databases.ts [ROUNDS] [SECONDS] [PGTS-SPEC]
 * (default 3 rounds, 10 s per pgbench run, pgts with its default adapter; a
 * spec as run.sh's --adapter takes, e.g. `subprocess` or
 * `inproc:fsync=off`). Medians and every figure are printed, with the load
 * average at the start and the end.
 */

import { spawn, spawnSync } from "node:child_process";
import { loadavg } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { PG_BIN, type Server, startPgts, startPostgres } from "./lib/servers.ts";

const ROUNDS = Number(process.argv[2] ?? 3);
const SECONDS = Number(process.argv[3] ?? 10);
const SPEC = process.argv[4] ?? "default";

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** psql's arguments to run `sql` in `database` on `server`, stopping at the first error. */
function psqlArgs(server: Server, database: string, sql: string): string[] {
  return [
    "-X",
    "-q",
    "-v",
    "ON_ERROR_STOP=1",
    "-h",
    server.host,
    "-p",
    String(server.port),
    "-U",
    "postgres",
    "-d",
    database,
    "-c",
    sql,
  ];
}

const PSQL_ENV = { ...process.env, PGSSLMODE: "disable" };

function psql(server: Server, database: string, sql: string): void {
  const r = spawnSync(join(PG_BIN, "psql"), psqlArgs(server, database, sql), {
    encoding: "utf8",
    env: PSQL_ENV,
  });
  if (r.status !== 0) throw new Error(`${server.label}: ${sql}: ${r.stderr}`);
}

/** Wall-clock ms of one statement run by psql (a connection's start included, as createdb's). */
function timedPsql(server: Server, database: string, sql: string): number {
  const t0 = performance.now();
  psql(server, database, sql);
  return performance.now() - t0;
}

function pgbench(server: Server, database: string, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const proc = spawn(join(PG_BIN, "pgbench"), [
      "-h",
      server.host,
      "-p",
      String(server.port),
      "-U",
      "postgres",
      ...args,
      database,
    ], { env: { ...process.env, PGSSLMODE: "disable" } });
    let out = "";
    proc.stdout.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
    proc.stderr.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
    proc.on("exit", () => resolve(Number(/^tps = ([0-9.]+)/m.exec(out)?.[1] ?? NaN)));
  });
}

/** A template of about 10 MB: 80,000 rows of 100 bytes and an index. */
const TEMPLATE_SQL = "CREATE TABLE filler AS SELECT g AS id, repeat('x', 100) AS pad" +
  " FROM generate_series(1, 80000) g; CREATE INDEX ON filler (id); CHECKPOINT";

const load = () => loadavg().map((x) => x.toFixed(2)).join(" ");
console.log(`load average at the start: ${load()} (${navigator.hardwareConcurrency} CPUs)`);

const pg = await startPostgres();
const pgts = await startPgts(SPEC).catch(async (e) => {
  await pg.stop();
  throw e;
});
try {
  for (const s of [pgts, pg]) {
    psql(s, "postgres", "CREATE DATABASE tmpl10");
    psql(s, "tmpl10", TEMPLATE_SQL);
  }
  const times = new Map<Server, number[]>([[pgts, []], [pg, []]]);
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? [pgts, pg] : [pg, pgts];
    for (const s of order) {
      times.get(s)!.push(timedPsql(s, "postgres", `CREATE DATABASE copy${round} TEMPLATE tmpl10`));
      psql(s, "postgres", `DROP DATABASE copy${round}`);
    }
  }
  console.log(
    "\nCREATE DATABASE … TEMPLATE tmpl10 (about 10 MB), ms (psql's run, connection included)",
  );
  for (const [s, xs] of times) {
    console.log(
      `  ${s.label}: median ${median(xs).toFixed(0)}  [${xs.map((x) => x.toFixed(0)).join(", ")}]`,
    );
  }
  console.log(
    `  pgts / PostgreSQL 15: ${(median(times.get(pgts)!) / median(times.get(pg)!)).toFixed(2)}×`,
  );

  for (const db of ["bench_a", "bench_b"]) {
    psql(pgts, "postgres", `CREATE DATABASE ${db}`);
    const init = spawnSync(join(PG_BIN, "pgbench"), [
      "-i",
      "-q",
      "-s",
      "1",
      "-h",
      pgts.host,
      "-p",
      String(pgts.port),
      "-U",
      "postgres",
      db,
    ], { encoding: "utf8" });
    if (init.status !== 0) throw new Error(`pgbench -i ${db}: ${init.stderr}`);
  }
  const run = ["-n", "-S", "-T", String(SECONDS)];
  const one: number[] = [];
  const two: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const single = () =>
      pgbench(pgts, "bench_a", [...run, "-c", "4", "-j", "2"]).then((t) => one.push(t));
    const pair = () =>
      Promise.all([
        pgbench(pgts, "bench_a", [...run, "-c", "2"]),
        pgbench(pgts, "bench_b", [...run, "-c", "2"]),
      ]).then(([a, b]) => two.push(a + b));
    if (round % 2 === 0) {
      await single();
      await pair();
    } else {
      await pair();
      await single();
    }
  }
  console.log(`\npgts select-only, ${SECONDS} s runs, TPS`);
  console.log(
    `  one database, -c 4: median ${median(one).toFixed(0)}  [${
      one.map((x) => x.toFixed(0)).join(", ")
    }]`,
  );
  console.log(
    `  two databases, -c 2 each, summed: median ${median(two).toFixed(0)}  [${
      two.map((x) => x.toFixed(0)).join(", ")
    }]`,
  );
  console.log(`  two / one: ${(median(two) / median(one)).toFixed(2)}×`);

  // The CPU-bound pair: wall-clock ms until both statements have answered.
  const heavy = "SELECT count(*) FROM generate_series(1, 3000000) g WHERE g % 7 = 3";
  const pairMs = async (a: string, b: string) => {
    const t0 = performance.now();
    await Promise.all([a, b].map((db) =>
      new Promise<void>((resolve, reject) => {
        const proc = spawn(join(PG_BIN, "psql"), psqlArgs(pgts, db, heavy), {
          stdio: "ignore",
          env: PSQL_ENV,
        });
        proc.on("exit", (code) => code === 0 ? resolve() : reject(new Error(`psql exit ${code}`)));
      })
    ));
    return performance.now() - t0;
  };
  await pairMs("bench_a", "bench_b"); // both engines warm
  const same: number[] = [];
  const apart: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    if (round % 2 === 0) {
      same.push(await pairMs("bench_a", "bench_a"));
      apart.push(await pairMs("bench_a", "bench_b"));
    } else {
      apart.push(await pairMs("bench_a", "bench_b"));
      same.push(await pairMs("bench_a", "bench_a"));
    }
  }
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(", ");
  console.log(`\npgts, two CPU-bound statements at once (${heavy}), ms until both answered`);
  console.log(`  both in one database: median ${median(same).toFixed(0)}  [${fmt(same)}]`);
  console.log(
    `  one in each of two databases: median ${median(apart).toFixed(0)}  [${fmt(apart)}]`,
  );
  console.log(`  throughput two / one: ${(median(same) / median(apart)).toFixed(2)}×`);
} finally {
  await pgts.stop();
  await pg.stop();
  console.log(`\nload average at the end: ${load()}`);
}
