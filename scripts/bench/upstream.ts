/**
 * pgts in front of PostgreSQL 15 against PostgreSQL 15 directly and against
 * pgbouncer, side by side in one run. Run with
 *   ./node_modules/.bin/bun scripts/bench/upstream.ts [-T SECONDS] [-c CLIENTS] [-r ROUNDS]
 *     [-s SCALE] [--adapter bun,inproc] [--upstream unix|tcp|tcp,unix] [--no-pgbouncer]
 *     [--pool-mode session|transaction] [--pool-size N] [-C] [--idle N] [--http]
 *     [--cpu-prof DIR]
 * (defaults: -T 10 -c 4 -r 3 -s 10 --adapter bun,inproc --upstream unix; needs
 * root or a user that can run postgres). `unix` is the default: on the
 * 2-CPU VM of 2026-11-21 it measured the same as `tcp` (within 3%, 5 rounds)
 * and it spares both ends the loopback TCP stack.
 *
 * It starts a throwaway PostgreSQL 15 (initdb into a temp dir, run as the
 * "postgres" OS user when root, SCRAM for TCP, trust on its Unix socket),
 * one `pgts start --adapter A --engine URL` per adapter and upstream kind
 * (each with its own data dir; `unix` dials PostgreSQL's socket, `tcp`
 * 127.0.0.1), and pgbouncer in session mode (installed from Debian by
 * scripts/ensure-pgbouncer.sh when missing, run as the same OS user; it
 * reaches PostgreSQL the way the first `--upstream` says).
 * `--pool-mode transaction` runs pgts and pgbouncer as transaction poolers
 * with `--pool-size` upstream connections each (default: CLIENTS, at most
 * 20); `-C` makes pgbench connect anew for every transaction. `--idle N`
 * runs no pgbench: it opens N idle node-postgres clients to each middle
 * (pgts, pgbouncer) and prints the RSS of its process tree before and
 * with them, and how long one more client takes to connect and run
 * `SELECT 1` then. `--http` runs no pgbench either: it starts
 * `pgts serve-http --engine URL` twice, in session mode and with
 * `pool_mode = transaction`, and prints the requests per second of Neon's
 * SQL over HTTP `SELECT 1` at concurrency 1 and 32 on each, side by side
 * (`-T` seconds per point). Otherwise it loads
 * pgbench's tables once, then runs pgbench select-only (-S) and TPC-B (the
 * default script) with -c CLIENTS -j 2 over TCP against every side in turn;
 * the order rotates every round so no side always runs on a warmer cache.
 * It prints every run with the CPU time the side's own processes used per
 * transaction (for pgts and pgbouncer that is the middle's cost), the CPU
 * PostgreSQL used per transaction and how idle the machine was, then per
 * workload the median TPS of each side and its ratio to direct, and a
 * markdown table. Everything is stopped and removed at the
 * end, also on failure or SIGINT/SIGTERM. `--cpu-prof DIR` runs every pgts
 * process under Bun's CPU profiler (markdown profiles in DIR, written when
 * the servers stop).
 */

import { spawn, spawnSync } from "node:child_process";
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";

const ROOT = resolve(import.meta.dirname ?? ".", "../..");
const PG_BIN = "/usr/lib/postgresql/15/bin";
const BUN = join(ROOT, "node_modules/.bin/bun");
const PASSWORD = "bench";
/** Ticks of /proc/<pid>/stat's CPU times (USER_HZ; 100 on every Linux port in use). */
const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout) || 100;

const { values } = parseArgs({
  options: {
    T: { type: "string", short: "T", default: "10" },
    c: { type: "string", short: "c", default: "4" },
    r: { type: "string", short: "r", default: "3" },
    s: { type: "string", short: "s", default: "10" },
    adapter: { type: "string", default: "bun,inproc" },
    upstream: { type: "string", default: "unix" },
    "no-pgbouncer": { type: "boolean", default: false },
    "pool-mode": { type: "string", default: "session" },
    "pool-size": { type: "string" },
    C: { type: "boolean", short: "C", default: false },
    idle: { type: "string" },
    http: { type: "boolean", default: false },
    "cpu-prof": { type: "string" },
  },
});
const seconds = Number(values.T);
const clients = Number(values.c);
const rounds = Number(values.r);
const scale = Number(values.s);
const adapters = values.adapter.split(",").filter((a) => a !== "");
const poolMode = values["pool-mode"];
if (poolMode !== "session" && poolMode !== "transaction") {
  throw new RangeError(`--pool-mode must be session or transaction, not "${poolMode}"`);
}
const poolSize = Number(values["pool-size"] ?? Math.min(clients, 20));
const reconnect = values.C;
const idleClients = values.idle === undefined ? 0 : Number(values.idle);
const upstreams = values.upstream.split(",").filter((u) => u !== "");
for (const u of upstreams) {
  if (u !== "tcp" && u !== "unix") {
    throw new RangeError(`--upstream must be tcp or unix, not "${u}"`);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen({ host: "127.0.0.1", port: 0 }, () => {
      const a = s.address();
      s.close(() => res(a !== null && typeof a === "object" ? a.port : 0));
    });
  });
}

const root = process.getuid?.() === 0;
const osUser = root ? (process.env["PG_OS_USER"] ?? "postgres") : null;
const asUser = (cmd: string[]) => (osUser === null ? cmd : ["runuser", "-u", osUser, "--", ...cmd]);

function must(cmd: string[], env: Record<string, string> = {}): string {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { env: { ...process.env, ...env }, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd.join(" ")} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** pgbench's output; it is killed with the bench. */
function pgbench(args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((res, rej) => {
    const p = spawn(`${PG_BIN}/pgbench`, args, {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const stop = () => p.kill("SIGKILL");
    stops.push(stop);
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += String(d)));
    p.stderr.on("data", (d) => (err += String(d)));
    p.on("error", rej);
    p.on("close", (code) => {
      stops.splice(stops.indexOf(stop), 1);
      if (code === 0) res(out);
      else rej(new Error(`pgbench ${args.join(" ")} failed:\n${out}\n${err}`));
    });
  });
}

async function until(what: string, check: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * CPU seconds used so far by `pid` and every live descendant, plus what the
 * reaped ones used (cutime/cstime): the difference of two samples is what
 * the tree used in between, backends that came and went included.
 */
function treeCpu(pid: number): number {
  const stats = new Map<number, { ppid: number; self: number; reaped: number }>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // gone
    }
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const n = (i: number) => Number(f[i]);
    stats.set(Number(name), { ppid: n(1), self: n(11) + n(12), reaped: n(13) + n(14) });
  }
  const children = new Map<number, number[]>();
  for (const [p, s] of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), p]);
  let ticks = stats.get(pid)?.reaped ?? 0;
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    ticks += stats.get(p)?.self ?? 0;
    stack.push(...(children.get(p) ?? []));
  }
  return ticks / CLK_TCK;
}

/** Not exited (a zombie, which this loop cannot reap while it blocks, has). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Idle and total jiffies of all CPUs, from /proc/stat's first line. */
function machineIdle(): { idle: number; total: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1);
  const n = f.map(Number);
  return { idle: (n[3] ?? 0) + (n[4] ?? 0), total: n.reduce((a, b) => a + b, 0) };
}

interface Side {
  readonly name: string;
  readonly port: number;
  /** The root of the side's process tree, for its CPU time. */
  readonly pid: number;
}

const dir = mkdtempSync(join(tmpdir(), "pgts-bench-upstream-"));
/** Stops what was started, last first. */
const stops: (() => void)[] = [];
const killGroup = (pid: number | undefined) => () => {
  try {
    if (pid !== undefined) process.kill(-pid, "SIGKILL");
  } catch {
    // gone
  }
};

async function startPostgres(): Promise<{ port: number; pid: number }> {
  if (osUser !== null && spawnSync("id", ["-u", osUser]).status !== 0) {
    must(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", osUser]);
  }
  const data = join(dir, "pg");
  writeFileSync(join(dir, "pw"), `${PASSWORD}\n`);
  if (osUser !== null) {
    const uid = Number(must(["id", "-u", osUser]).trim());
    const gid = Number(must(["id", "-g", osUser]).trim());
    chownSync(dir, uid, gid);
    chownSync(join(dir, "pw"), uid, gid);
  }
  must(asUser([
    `${PG_BIN}/initdb`,
    "-D",
    data,
    "-U",
    "postgres",
    `--pwfile=${join(dir, "pw")}`,
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "-E",
    "UTF8",
    "--no-locale",
    "--no-sync",
  ]));
  const port = await freePort();
  const cmd = asUser([
    `${PG_BIN}/postgres`,
    "-D",
    data,
    "-p",
    String(port),
    "-k",
    dir,
    "-c",
    "listen_addresses=127.0.0.1",
    "-c",
    "fsync=off",
    "-c",
    `max_connections=${Math.max(100, clients + 20)}`,
  ]);
  const pg = spawn(cmd[0]!, cmd.slice(1), { stdio: "ignore", detached: true });
  stops.push(killGroup(pg.pid));
  await until(
    "postgres",
    () => spawnSync(`${PG_BIN}/pg_isready`, ["-q", "-h", dir, "-p", String(port)]).status === 0,
  );
  const pid = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
  stops.push(() => {
    try {
      process.kill(pid, "SIGQUIT");
    } catch {
      // gone
    }
  });
  return { port, pid };
}

/** The URL pgts dials: PostgreSQL's Unix socket (trust) or 127.0.0.1 (SCRAM). */
const upstreamUrl = (kind: string, pgPort: number) =>
  kind === "unix"
    ? `postgres://postgres:${PASSWORD}@/postgres?host=${dir}&port=${pgPort}`
    : `postgres://postgres:${PASSWORD}@127.0.0.1:${pgPort}/postgres`;

async function startPgts(adapter: string, kind: string, pgPort: number): Promise<Side> {
  const front = join(dir, `pgts-${adapter}-${kind}`);
  must([BUN, join(ROOT, "mod.ts"), "init", "-D", front]);
  const profile = values["cpu-prof"] === undefined
    ? []
    : ["--cpu-prof-md", `--cpu-prof-dir=${resolve(values["cpu-prof"])}`];
  const pgts = spawn(BUN, [
    ...profile,
    join(ROOT, "mod.ts"),
    "start",
    "-D",
    front,
    "-p",
    "0",
    "-c",
    `unix_socket_directories=${front}`,
    "--adapter",
    adapter,
    "--engine",
    upstreamUrl(kind, pgPort),
    ...(poolMode === "transaction"
      ? ["-c", "pool_mode=transaction", "-c", `default_pool_size=${poolSize}`]
      : []),
    "-c",
    `max_connections=${Math.max(500, idleClients + 20)}`,
    "-c",
    `max_client_conn=${Math.max(1000, idleClients + 20)}`,
    // Backend processes started ahead, so that pgbench's -T is not spent
    // starting one per client (a Bun process each, under the bun adapter).
    "-c",
    `backend_pool_size=${Math.min(64, clients + 4)}`,
  ], { cwd: ROOT, stdio: "ignore", detached: true });
  stops.push(killGroup(pgts.pid));
  // A fast shutdown first, so that a profiled server writes its profile.
  stops.push(() => {
    try {
      process.kill(pgts.pid!, "SIGINT");
    } catch {
      return; // gone
    }
    for (let i = 0; i < 50 && running(pgts.pid!); i++) spawnSync("sleep", ["0.1"]);
  });
  let port = 0;
  await until(`pgts ${adapter}`, () => {
    try {
      const l = readFileSync(join(front, "postmaster.pid"), "utf8").split("\n");
      if (l[7]?.trim() !== "ready") return false;
      port = Number(l[3]);
      return true;
    } catch {
      return false;
    }
  });
  const name = upstreams.length > 1 ? `pgts ${adapter} ${kind}` : `pgts ${adapter}`;
  return { name, port, pid: pgts.pid! };
}

/**
 * pgbouncer in session mode, run as the OS user PostgreSQL runs as (it
 * refuses root); null, with the reason printed, when it cannot be had.
 */
async function startPgbouncer(kind: string, pgPort: number): Promise<Side | null> {
  const ensure = spawnSync("bash", [join(ROOT, "scripts/ensure-pgbouncer.sh")], {
    encoding: "utf8",
  });
  const bin = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"].find((p) => {
    return spawnSync(p, ["--version"]).status === 0;
  });
  if (ensure.status !== 0 || bin === undefined) {
    console.log(
      `pgbouncer skipped: ${ensure.stderr.trim() || "no pgbouncer binary after install"}`,
    );
    return null;
  }
  const port = await freePort();
  const ini = join(dir, "pgbouncer.ini");
  const server = kind === "unix" ? `host=${dir}` : `host=127.0.0.1 password=${PASSWORD}`;
  writeFileSync(join(dir, "userlist.txt"), `"postgres" "${PASSWORD}"\n`);
  // Clients are trusted, as by pgts's default pg_hba.conf (a client logs in
  // once per pgbench run: authentication costs nothing measured here).
  writeFileSync(
    ini,
    [
      "[databases]",
      `postgres = ${server} port=${pgPort} dbname=postgres user=postgres`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${join(dir, "userlist.txt")}`,
      `pool_mode = ${poolMode}`,
      `max_client_conn = ${Math.max(1000, idleClients + 20)}`,
      `default_pool_size = ${poolMode === "transaction" ? poolSize : Math.max(20, clients + 4)}`,
      `pidfile = ${join(dir, "pgbouncer.pid")}`,
      "log_connections = 0",
      "log_disconnections = 0",
      "",
    ].join("\n"),
  );
  // pgbouncer does not raise its own soft limit on open files (1,024 under
  // runuser here): with --idle it would stop accepting at ~1,000 clients.
  const cmd = asUser(["bash", "-c", 'ulimit -n "$(ulimit -Hn)" && exec "$0" "$1"', bin, ini]);
  const p = spawn(cmd[0]!, cmd.slice(1), { stdio: "ignore", detached: true });
  stops.push(killGroup(p.pid));
  const env = { ...process.env, PGPASSWORD: PASSWORD, PGCONNECT_TIMEOUT: "2" };
  await until("pgbouncer", () => {
    const args = ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-c", "select 1"];
    return spawnSync(`${PG_BIN}/psql`, [...args, "postgres"], { env }).status === 0;
  });
  return { name: "pgbouncer", port, pid: p.pid! };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const load = () => loadavg().map((l) => l.toFixed(2)).join(", ");

async function main(): Promise<void> {
  const loadAtStart = load();
  const pg = await startPostgres();
  if (values.http) return await httpRun(pg.port, loadAtStart);
  const sides: Side[] = [{ name: "direct", port: pg.port, pid: pg.pid }];
  for (const kind of upstreams) {
    for (const adapter of adapters) sides.push(await startPgts(adapter, kind, pg.port));
  }
  if (!values["no-pgbouncer"]) {
    const b = await startPgbouncer(upstreams[0]!, pg.port);
    if (b !== null) sides.push(b);
  }

  const env = {
    PGHOST: "127.0.0.1",
    PGUSER: "postgres",
    PGDATABASE: "postgres",
    PGPASSWORD: PASSWORD,
  };
  if (idleClients > 0) return await idleRun(sides.filter((s) => s.name !== "direct"), loadAtStart);
  must([`${PG_BIN}/pgbench`, "-i", "-q", "-s", String(scale), "-p", String(pg.port)], env);
  console.log(
    `pgbench -c ${clients} -j 2 -T ${seconds}${reconnect ? " -C" : ""}, scale ${scale}, ` +
      `${rounds} rounds; pool_mode ${poolMode}` +
      `${poolMode === "transaction" ? ` with ${poolSize} upstream connections per pooler` : ""}; ` +
      `pgts reaches PostgreSQL 15 over ${upstreams.join(" and ")}` +
      `${upstreams[0] === "unix" ? " (its Unix socket)" : ""}; load average ${loadAtStart}`,
  );
  console.log(sides.map((s) => `${s.name} on port ${s.port}`).join(", "));

  interface Run {
    tps: number;
    /** CPU of the side's own processes per transaction, µs. */
    cpuUs: number;
    /** PostgreSQL's, for the sides in front of it (for direct: the same as cpuUs). */
    pgUs: number;
    /** Of the whole machine, other users' load included. */
    idle: number;
  }
  const run = async (side: Side, args: string[]): Promise<Run> => {
    const cpu0 = treeCpu(side.pid);
    const pg0 = treeCpu(pg.pid);
    const idle0 = machineIdle();
    // Asynchronous, so that SIGINT/SIGTERM stop the bench mid-run.
    const out = await pgbench([
      "-n",
      "-c",
      String(clients),
      "-j",
      "2",
      "-T",
      String(seconds),
      "-p",
      String(side.port),
      ...(reconnect ? ["-C"] : []),
      ...args,
    ], env);
    // The backends of the run exit and are reaped right after pgbench does.
    await sleep(300);
    const cpu = treeCpu(side.pid) - cpu0;
    const pgCpu = treeCpu(pg.pid) - pg0;
    const idle1 = machineIdle();
    const idle = (idle1.idle - idle0.idle) / (idle1.total - idle0.total);
    const failed = /number of failed transactions: (\d+)/.exec(out)?.[1];
    if (failed !== undefined && failed !== "0") throw new Error(`pgbench had ${failed} failures`);
    const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? "NaN");
    const txns = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? NaN);
    return { tps, cpuUs: (cpu / txns) * 1e6, pgUs: (pgCpu / txns) * 1e6, idle };
  };

  const width = Math.max(...sides.map((s) => s.name.length));
  const table: string[][] = [];
  const summary: string[] = [];
  for (const [workload, args] of [["select-only", ["-S"]], ["tpc-b", []]] as const) {
    const tps = new Map<string, number[]>(sides.map((s) => [s.name, []]));
    const cpu = new Map<string, number[]>(sides.map((s) => [s.name, []]));
    for (let i = 0; i < rounds; i++) {
      const order = sides.map((_, k) => sides[(k + i) % sides.length]!);
      for (const side of order) {
        const r = await run(side, [...args]);
        tps.get(side.name)!.push(r.tps);
        cpu.get(side.name)!.push(r.cpuUs);
        console.log(
          `${workload.padEnd(12)} round ${i + 1} ${side.name.padEnd(width)} ` +
            `${r.tps.toFixed(0).padStart(7)} tps  cpu ${r.cpuUs.toFixed(1).padStart(6)} µs/txn  ` +
            `postgres ${r.pgUs.toFixed(1).padStart(6)} µs/txn  idle ${
              (r.idle * 100).toFixed(0)
            }%  ` +
            `(load ${load()})`,
        );
      }
    }
    const direct = median(tps.get("direct")!);
    const row: string[] = [workload];
    for (const s of sides) {
      const t = median(tps.get(s.name)!);
      const c = median(cpu.get(s.name)!);
      const ratio = s.name === "direct" ? "" : `  ratio ${(t / direct).toFixed(2)}`;
      summary.push(
        `${workload.padEnd(12)} ${s.name.padEnd(width)} ${t.toFixed(0).padStart(7)} tps  ` +
          `cpu ${c.toFixed(1).padStart(6)} µs/txn${ratio}`,
      );
      row.push(
        s.name === "direct"
          ? `${t.toFixed(0)} (${c.toFixed(0)} µs)`
          : `${t.toFixed(0)} × ${(t / direct).toFixed(2)} (${c.toFixed(0)} µs)`,
      );
    }
    table.push(row);
  }
  console.log("\nmedians:");
  for (const line of summary) console.log(line);
  console.log(
    `\nMedian TPS, × the ratio to direct, (CPU of the side's own processes per transaction); ` +
      `load average ${loadAtStart} at the start, ${load()} at the end:\n`,
  );
  console.log(`| workload | ${sides.map((s) => s.name).join(" | ")} |`);
  console.log(`| --- | ${sides.map(() => "---:").join(" | ")} |`);
  for (const row of table) console.log(`| ${row.join(" | ")} |`);
}

/** kB of resident memory of `pid` and its descendants (VmRSS). */
function treeRssKb(pid: number): number {
  let total = 0;
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    try {
      const status = readFileSync(`/proc/${p}/status`, "utf8");
      total += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      for (const t of readdirSync(`/proc/${p}/task`)) {
        const kids = readFileSync(`/proc/${p}/task/${t}/children`, "utf8").trim();
        if (kids !== "") stack.push(...kids.split(/\s+/).map(Number));
      }
    } catch {
      // gone
    }
  }
  return total;
}

/** `--idle N`: memory per idle client, and how fast one more is served. */
async function idleRun(middles: Side[], loadAtStart: string): Promise<void> {
  const { default: pgClient } = await import("pg");
  console.log(`${idleClients} idle clients per middle; load average ${loadAtStart}`);
  for (const side of middles) {
    const connect = async () => {
      const c = new pgClient.Client({
        host: "127.0.0.1",
        port: side.port,
        user: "postgres",
        database: "postgres",
        password: PASSWORD,
      });
      c.on("error", () => {});
      await c.connect();
      return c;
    };
    const before = treeRssKb(side.pid);
    const held: InstanceType<typeof pgClient.Client>[] = [];
    const started = Date.now();
    while (held.length < idleClients) {
      const batch = Math.min(50, idleClients - held.length);
      held.push(...await Promise.all(Array.from({ length: batch }, connect)));
    }
    const openedS = (Date.now() - started) / 1000;
    await sleep(1000);
    const after = treeRssKb(side.pid);
    // One more client, five times apart (the median, and the slowest: a
    // collection in the middle's process shows as one slow client).
    const newMsAll: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const one = await connect();
      await one.query("SELECT 1");
      newMsAll.push(performance.now() - t0);
      await one.end();
      await sleep(300);
    }
    const newMs = median(newMsAll);
    const newMax = Math.max(...newMsAll);
    await Promise.all(held.map((c) => c.end().catch(() => {})));
    const line = `${side.name}: RSS ${(before / 1024).toFixed(0)} MiB → ${
      (after / 1024).toFixed(0)
    } MiB with ${idleClients} idle clients (${
      ((after - before) / idleClients).toFixed(0)
    } kB each; opened in ${openedS.toFixed(1)} s); one more client connected and ran SELECT 1 in ${
      newMs.toFixed(0)
    } ms (median of 5, slowest ${newMax.toFixed(0)} ms; load ${load()})`;
    console.log(line);
  }
}

/** `--http`: SELECT 1 over Neon's protocol, each request a session, against a transaction pool. */
async function httpRun(pgPort: number, loadAtStart: string): Promise<void> {
  const body = JSON.stringify({ query: "SELECT 1", params: [] });
  const headers = {
    "Neon-Connection-String": "postgres://postgres@127.0.0.1/postgres",
    "Neon-Raw-Text-Output": "true",
    "Neon-Array-Mode": "true",
  };
  const serve = async (name: string, extra: string[]) => {
    const port = await freePort();
    const p = spawn(BUN, [
      join(ROOT, "mod.ts"),
      "serve-http",
      "--engine",
      upstreamUrl(upstreams[0]!, pgPort),
      "--port",
      String(port),
      ...extra,
    ], { cwd: ROOT, stdio: "ignore", detached: true });
    stops.push(killGroup(p.pid));
    const url = `http://127.0.0.1:${port}/sql`;
    const one = async () => {
      const res = await fetch(url, { method: "POST", headers, body });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${name}: HTTP ${res.status}`);
    };
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await one();
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await sleep(100);
      }
    }
    return { name, one };
  };
  const sides = [
    await serve("session", []),
    await serve("transaction", [
      "-c",
      "pool_mode=transaction",
      "-c",
      `default_pool_size=${poolSize}`,
    ]),
  ];
  console.log(
    `SELECT 1 over HTTP, ${seconds} s per point, ${rounds} rounds; load average ${loadAtStart}`,
  );
  const results = new Map<string, number[]>();
  for (let r = 0; r < rounds; r++) {
    for (const concurrency of [1, 32]) {
      for (const side of r % 2 === 0 ? sides : [...sides].reverse()) {
        let done = 0;
        const end = Date.now() + seconds * 1000;
        await Promise.all(Array.from({ length: concurrency }, async () => {
          while (Date.now() < end) {
            await side.one();
            done++;
          }
        }));
        const rps = done / seconds;
        const key = `${side.name} c=${concurrency}`;
        results.set(key, [...(results.get(key) ?? []), rps]);
        console.log(
          `round ${r + 1} ${key.padEnd(16)} ${rps.toFixed(0).padStart(6)} req/s  (load ${load()})`,
        );
      }
    }
  }
  console.log("\nmedians:");
  for (const [key, xs] of results) {
    console.log(`${key.padEnd(16)} ${median(xs).toFixed(0).padStart(6)} req/s`);
  }
}

let cleaned = false;
function cleanUp(): void {
  if (cleaned) return;
  cleaned = true;
  for (const stop of stops.reverse()) stop();
  spawnSync("sleep", ["1"]);
  rmSync(dir, { recursive: true, force: true });
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    cleanUp();
    process.exit(130);
  });
}

try {
  await main();
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
} finally {
  cleanUp();
}
