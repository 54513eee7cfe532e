/**
 * Time from the SIGKILL of a backend to a new connection that runs a query,
 * on a real `pgts start` server: the whole crash cycle (the postmaster sees
 * the exit, SIGQUITs every other child, waits for them, restarts the engine
 * child, which replays its WAL, and opens for connections again). Run with
 *   ./node_modules/.bin/bun scripts/bench/crash-recovery.ts [bun|deno ...]
 *
 * For each runtime given (default: bun, then deno), one server on a fresh
 * data directory (`pgts init`), Bun adapter under Bun and Deno's default
 * (forked Deno subprocesses) under Deno; 5 crashes each, a new connection
 * attempted every 5 ms after the kill. Prints the median and range per
 * runtime. Needs `pg` (a devDependency).
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import pg from "pg";

const ROOT = resolve(new URL("../..", import.meta.url).pathname);
const MOD = join(ROOT, "mod.ts");
const RUNS = 5;
type Runtime = "bun" | "deno";

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function command(runtime: Runtime, args: string[]): [string, string[]] {
  return runtime === "bun"
    ? [join(ROOT, "node_modules/.bin/bun"), [MOD, ...args]]
    : [join(ROOT, "node_modules/.bin/deno"), ["run", "-A", MOD, ...args]];
}

function pidFile(dir: string): string[] {
  try {
    return readFileSync(join(dir, "postmaster.pid"), "utf8").split("\n");
  } catch {
    return [];
  }
}

async function startServer(
  runtime: Runtime,
  dir: string,
): Promise<{ proc: ChildProcess; port: number }> {
  const args = ["start", "-D", dir, "-p", "0", "-c", `unix_socket_directories=${dir}`];
  if (runtime === "bun") args.push("--adapter", "bun");
  const [cmd, argv] = command(runtime, args);
  const proc = spawn(cmd, argv, { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  proc.stderr!.on("data", (d: Uint8Array) => (err += new TextDecoder().decode(d)));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const l = pidFile(dir);
    if (l[0] === String(proc.pid) && l[7]?.trim() === "ready") return { proc, port: Number(l[3]) };
    if (proc.exitCode !== null || Date.now() > deadline) {
      throw new Error(`pgts start did not become ready:\n${err}`);
    }
    await sleep(20);
  }
}

async function connect(port: number): Promise<pg.Client> {
  const c = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres" });
  c.on("error", () => {});
  await c.connect();
  return c;
}

/** ms from SIGKILL of a session's backend until a new session has run `select 1`. */
async function oneCrash(port: number): Promise<number> {
  const victim = await connect(port);
  await victim.query("select 1");
  const pid = (victim as unknown as { processID: number }).processID;
  process.kill(pid, "SIGKILL");
  const t0 = performance.now();
  for (;;) {
    try {
      const c = await connect(port);
      await c.query("select 1");
      const ms = performance.now() - t0;
      await c.end();
      victim.end().catch(() => {});
      return ms;
    } catch {
      await sleep(5);
    }
  }
}

async function measure(runtime: Runtime): Promise<number[]> {
  const root = mkdtempSync(join(tmpdir(), "pgts-bench-crash-"));
  const dir = join(root, "d");
  let proc: ChildProcess | null = null;
  try {
    const [cmd, argv] = command("bun", ["init", "-D", dir]);
    const init = spawnSync(cmd, argv, { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
    if (init.status !== 0) throw new Error(`pgts init failed: ${init.stderr}`);
    const server = await startServer(runtime, dir);
    proc = server.proc;
    const client = await connect(server.port);
    await client.query("create table t (a int); insert into t values (1)");
    await client.end();
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      times.push(await oneCrash(server.port));
      await sleep(200);
    }
    const check = await connect(server.port);
    const { rows } = await check.query("select count(*)::int as n from t");
    await check.end();
    if (rows[0]?.n !== 1) throw new Error("committed data was lost across the crashes");
    return times;
  } finally {
    if (proc !== null && proc.exitCode === null) {
      const [cmd, argv] = command("bun", ["stop", "-D", dir, "-m", "immediate"]);
      spawnSync(cmd, argv, { cwd: ROOT, stdio: "ignore" });
      proc.kill("SIGKILL");
    }
    rmSync(root, { recursive: true, force: true });
  }
}

const runtimes = process.argv.slice(2).filter((a) => a === "bun" || a === "deno") as Runtime[];
const rows: string[][] = [];
for (const runtime of runtimes.length > 0 ? runtimes : (["bun", "deno"] as Runtime[])) {
  const times = await measure(runtime);
  rows.push([
    runtime === "bun" ? "bun (--adapter bun)" : "deno (subprocess)",
    median(times).toFixed(0),
    `${Math.min(...times).toFixed(0)}..${Math.max(...times).toFixed(0)}`,
    times.map((t) => t.toFixed(0)).join(" "),
  ]);
}
const header = ["server runtime", `SIGKILL → query ms (median ${RUNS})`, "range", "samples"];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ");
console.log(line(header));
console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
for (const r of rows) console.log(line(r));
process.exit(0);
