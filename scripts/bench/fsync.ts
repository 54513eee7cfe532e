/**
 * What durable commits cost: TPC-B (`pgbench -n -c 4`) on pgts with fsync on
 * (the default), with `synchronous_commit = off` and with `fsync = off`,
 * beside PostgreSQL 15 with fsync on (its default) and pglite-socket (which
 * never fsyncs), all in one run, rounds alternating; then fsyncs per commit
 * (fsync(2) + fdatasync(2) of the server's whole process tree, counted by
 * `perf stat`'s syscall tracepoints, or `strace -c` where perf cannot, during
 * `pgbench -t`) at `-c 1` and `-c 8`, for TPC-B and for
 * one autocommit INSERT per transaction (where commits of concurrent
 * sessions can share an fsync: group commit), with that workload's TPS at
 * `-c 8`.
 *
 *   bun scripts/bench/fsync.ts [--adapter inproc:engine_placement=inline] [--rounds 3] [--duration 10]
 *
 * Prints one Markdown table with the ratios to PostgreSQL 15 and to pgts
 * with fsync on. The counting pass is separate from the timed one: strace
 * slows every syscall it stops at.
 */

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import {
  pgbench,
  processTree,
  type Server,
  startPgliteSocket,
  startPgts,
  startPostgres,
} from "./lib/servers.ts";

const { values: opts } = parseArgs({
  args: process.argv.slice(2),
  options: {
    adapter: { type: "string", default: "inproc:engine_placement=inline" },
    rounds: { type: "string", default: "3" },
    duration: { type: "string", default: "10" },
    transactions: { type: "string", default: "200" },
  },
});
const ROUNDS = Number(opts.rounds);
const DUR = Number(opts.duration);
const TXNS = Number(opts.transactions);
const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
const log = (line: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (n: number) => Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "n/a";

const base = opts.adapter!;
const variants = [
  { spec: base, label: `pgts ${base} (fsync on, the default)` },
  { spec: `${base}:synchronous_commit=off`, label: `pgts ${base}, synchronous_commit=off` },
  { spec: `${base}:fsync=off`, label: `pgts ${base}, fsync=off` },
];

/** One autocommit INSERT per transaction: no transaction block, no row every client updates. */
const scratch = mkdtempSync(join(tmpdir(), "pgts-bench-fsync-"));
const INSERT_SCRIPT = join(scratch, "insert.sql");
writeFileSync(
  INSERT_SCRIPT,
  "\\set aid random(1, 100000)\nINSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, :aid, 1, now());\n",
);
const WORKLOADS = { tpcb: [] as string[], insert: ["-f", INSERT_SCRIPT] };

/**
 * Whether `perf stat` can count syscall tracepoints here. It counts in the
 * kernel and stops nobody; strace stops the tracee at every syscall, not
 * only the two it counts, which slows each commit by its number of
 * syscalls and so changes how many share an fsync (a commit through the
 * Worker's two threads makes more of them than one through the inline
 * engine or a PostgreSQL backend).
 */
const PERF = spawnSync("perf", [
  "stat",
  "-x,",
  "-e",
  "syscalls:sys_enter_fsync",
  "true",
]).status === 0;

/** fsync + fdatasync calls of `server`'s process tree while pgbench runs `TXNS` transactions per client. */
async function fsyncsPerCommit(
  server: Server,
  clients: number,
  workload: readonly string[] = [],
): Promise<number> {
  // perf follows the processes' threads and children made after it attached;
  // `strace -f` follows only those made after, so it is given every thread
  // (the in-process server's fdatasyncs run on the I/O pool's threads,
  // which exist by then). perf gives up when a pid it was given is gone
  // (a reference script's short-lived child): the tree is read again.
  let counter: ReturnType<typeof spawn> | null = null;
  let exited: Promise<unknown> = Promise.resolve();
  let report = "";
  for (let attempt = 0; counter === null; attempt++) {
    const tree = processTree(server.pid);
    const c = PERF
      ? spawn("perf", [
        "stat",
        "-x,",
        "-e",
        "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync",
        "-p",
        tree.join(","),
      ], { stdio: ["ignore", "ignore", "pipe"] })
      : spawn("strace", [
        "-f",
        "-c",
        "-e",
        "trace=fsync,fdatasync",
        ...tree.flatMap((p) => {
          try {
            return readdirSync(`/proc/${p}/task`).map(Number);
          } catch {
            return [p];
          }
        }).flatMap((p) => ["-p", String(p)]),
      ], { stdio: ["ignore", "ignore", "pipe"] });
    report = "";
    c.stderr!.on("data", (d: Uint8Array) => (report += new TextDecoder().decode(d)));
    exited = new Promise((r) => c.once("exit", r));
    // Attached, unless it gave up.
    const gone = await Promise.race([
      exited.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 1000)),
    ]);
    if (!gone) counter = c;
    else if (attempt === 4) throw new Error(`could not count fsyncs:\n${report}`);
  }
  const r = await pgbench(server, ["-n", "-c", String(clients), "-t", String(TXNS), ...workload]);
  const done = Number(/actually processed: (\d+)/.exec(r.output)?.[1] ?? NaN);
  counter.kill("SIGINT");
  await exited;
  const calls = (name: string) =>
    Number(
      (PERF
        ? new RegExp(`^(\\d+),[^,]*,syscalls:sys_enter_${name},`, "m")
        : new RegExp(`^\\s*[\\d.]+\\s+[\\d.]+\\s+\\d+\\s+(\\d+)(?:\\s+\\d+)?\\s+${name}$`, "m"))
        .exec(report)?.[1] ?? 0,
    );
  return (calls("fsync") + calls("fdatasync")) / done;
}

const servers: Server[] = [];
try {
  if (!PERF && spawnSync("strace", ["-V"]).status !== 0) {
    throw new Error("perf or strace is needed");
  }
  const load0 = loadavg();
  log(
    `load average at start: ${load0}; ${ROUNDS} round(s) of ${DUR} s; fsyncs counted by ${
      PERF ? "perf" : "strace"
    }`,
  );
  for (const v of variants) servers.push({ ...(await startPgts(v.spec)), label: v.label });
  servers.push(await startPostgres());
  servers.push(await startPgliteSocket("bun"));
  for (const s of servers) {
    const init = await pgbench(s, ["-i", "-s", "1", "-I", "dtGvp"]);
    if (!/done in/.test(init.output)) throw new Error(`pgbench -i on ${s.label}:\n${init.output}`);
  }
  const tps = new Map<string, number[]>(servers.map((s) => [s.label, []]));
  const insertTps = new Map<string, number[]>(servers.map((s) => [s.label, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = servers.map((_, i) => servers[(i + round) % servers.length]!);
    for (const s of order) {
      const r = await pgbench(s, ["-n", "-c", "4", "-T", String(DUR)]);
      tps.get(s.label)!.push(r.tps);
      const ins = await pgbench(s, ["-n", "-c", "8", "-T", String(DUR), ...WORKLOADS.insert]);
      insertTps.get(s.label)!.push(ins.tps);
      log(
        `round ${round + 1}: ${s.label} ${r.tps.toFixed(0)} TPS, INSERT -c 8 ${ins.tps.toFixed(0)}`,
      );
    }
  }
  const perCommit = new Map<string, number[]>();
  for (const s of servers) {
    if (s.name === "pglite-socket") continue;
    perCommit.set(s.label, [
      await fsyncsPerCommit(s, 1),
      await fsyncsPerCommit(s, 8),
      await fsyncsPerCommit(s, 1, WORKLOADS.insert),
      await fsyncsPerCommit(s, 8, WORKLOADS.insert),
    ]);
    log(`fsyncs per commit: ${s.label} ${perCommit.get(s.label)!.map((x) => x.toFixed(2))}`);
  }
  const pg = median(tps.get(servers[3]!.label)!);
  const durable = median(tps.get(servers[0]!.label)!);
  const pgInsert = median(insertTps.get(servers[3]!.label)!);
  const pc = (s: Server, i: number) => perCommit.get(s.label)?.[i]?.toFixed(2) ?? "0";
  const lines = [
    `TPC-B \`pgbench -n -c 4 -T ${DUR}\`, scale 1, and autocommit INSERT at -c 8, median of ${ROUNDS}; load ${load0} → ${loadavg()}`,
    "",
    "| server | TPC-B TPS | × PostgreSQL 15 | × pgts fsync on | fsyncs/commit -c 1 | -c 8 | INSERT TPS -c 8 | × PostgreSQL 15 | fsyncs/commit -c 1 | -c 8 |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...servers.map((s) => {
      const t = median(tps.get(s.label)!);
      const i = median(insertTps.get(s.label)!);
      return `| ${s.label} | ${fmt(t)} | ${(t / pg).toFixed(2)} | ${(t / durable).toFixed(2)} | ${
        pc(s, 0)
      } | ${pc(s, 1)} | ${fmt(i)} | ${(i / pgInsert).toFixed(2)} | ${pc(s, 2)} | ${pc(s, 3)} |`;
    }),
  ];
  console.log(lines.join("\n"));
} finally {
  for (const s of servers) await s.stop().catch(() => {});
  rmSync(scratch, { recursive: true, force: true });
}
process.exit(0);
