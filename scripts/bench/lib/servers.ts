/**
 * The servers of a side-by-side run, started on loopback by the bench:
 * PostgreSQL 15 and pglite-socket through the reference scripts of
 * ../shared/bench (pg-reference.sh, peer-pglite-socket.sh), pgts through
 * its own CLI (`pgts init`, `pgts start -p 0`), and the wire floor
 * (scripts/bench/floor.ts). Each is a process tree whose
 * root pid is known, so that its memory can be read from /proc; each stops
 * on `stop()`, and the scratch directories go with it.
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";

export const ROOT = resolve(new URL("../../..", import.meta.url).pathname);
export const SHARED_BENCH = resolve(process.env.BENCH_SHARED ?? join(ROOT, "../shared/bench"));
export const PG_BIN = process.env.PGBIN ?? "/usr/lib/postgresql/15/bin";
const BUN = join(ROOT, "node_modules/.bin/bun");
const DENO = join(ROOT, "node_modules/.bin/deno");

export type ServerName = "pgts" | "pglite-socket" | "postgres" | "floor";

export interface Server {
  readonly name: ServerName;
  readonly label: string;
  readonly host: string;
  readonly port: number;
  /** The root of the server's process tree (postmaster, or the peer's runtime). */
  readonly pid: number;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A port below 32768 (outside the ephemeral range) that nothing listens on now. */
function freePort(): number {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const probe = spawnSync("bash", ["-c", `(exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null`]);
    if (probe.status !== 0) return port;
  }
}

function waitExit(proc: ChildProcess, ms: number): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return Promise.race([new Promise<void>((r) => proc.once("exit", () => r())), sleep(ms)]);
}

/** Runs a ../shared/bench script until it prints `<prefix>_PID=`; the script stops its server on SIGTERM. */
async function referenceScript(
  name: ServerName,
  label: string,
  args: string[],
  options: { env: Record<string, string>; prefix: string; port: number; scratch: string },
): Promise<Server> {
  const proc = spawn("bash", args, {
    env: { ...process.env, TMPDIR: options.scratch, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout!.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
  proc.stderr!.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
  const deadline = Date.now() + 300_000;
  const re = new RegExp(`^${options.prefix}_PID=(\\d+)`, "m");
  for (;;) {
    const m = re.exec(out);
    if (m) {
      return {
        name,
        label,
        host: "127.0.0.1",
        port: options.port,
        pid: Number(m[1]),
        async stop() {
          proc.kill("SIGTERM");
          await waitExit(proc, 20_000);
          rmSync(options.scratch, { recursive: true, force: true });
        },
      };
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      throw new Error(`${label} did not start:\n${out}`);
    }
    await sleep(50);
  }
}

export function startPostgres(): Promise<Server> {
  const scratch = mkdtempSync(join(tmpdir(), "pgts-bench-pg-"));
  // Run as root, the script starts the server as the postgres user, which must reach its data.
  chmodSync(scratch, 0o755);
  const port = freePort();
  return referenceScript("postgres", "PostgreSQL 15", [
    join(SHARED_BENCH, "pg-reference.sh"),
    String(port),
  ], {
    env: { PGREF_DATA: join(scratch, "data") },
    prefix: "PGREF",
    port,
    scratch,
  });
}

/** pglite-socket on an on-disk database, the same durability as pgts (no fsync, every write in the files). */
export function startPgliteSocket(runtime = "bun"): Promise<Server> {
  const scratch = mkdtempSync(join(tmpdir(), "pgts-bench-peer-"));
  const port = freePort();
  return referenceScript(
    "pglite-socket",
    `pglite-socket (${runtime})`,
    [join(SHARED_BENCH, "peer-pglite-socket.sh"), runtime, String(port), join(scratch, "db")],
    {
      env: {
        BENCH_NPM_CACHE: process.env.BENCH_NPM_CACHE ?? join(tmpdir(), "pgts-bench-npm"),
      },
      prefix: "PEER",
      port,
      scratch,
    },
  );
}

function pidFile(dir: string): string[] {
  try {
    return readFileSync(join(dir, "postmaster.pid"), "utf8").split("\n");
  } catch {
    return [];
  }
}

/** The wire floor (scripts/bench/floor.ts): canned answers, no engine, under Bun. */
export async function startWireFloor(): Promise<Server> {
  const port = freePort();
  const proc = spawn(BUN, [join(ROOT, "scripts/bench/floor.ts"), String(port)], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout!.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
  proc.stderr!.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
  const deadline = Date.now() + 30_000;
  while (!/^FLOOR_PID=/m.test(out)) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      throw new Error(`the wire floor did not start:\n${out}`);
    }
    await sleep(20);
  }
  return {
    name: "floor",
    label: "wire floor (bun)",
    host: "127.0.0.1",
    port,
    pid: proc.pid!,
    async stop() {
      proc.kill("SIGTERM");
      await waitExit(proc, 5_000);
    },
  };
}

/** A pgts server as the benches name it: `[deno+]adapter[:name=value...]`. */
export interface PgtsSpec {
  /** `deno` for `deno+...` (`deno run -A mod.ts start`); Bun otherwise. */
  readonly runtime: "bun" | "deno";
  /** The `--adapter` value; `default` starts pgts without one. */
  readonly adapter: string;
  /** `name=value` settings, each a `-c`. */
  readonly settings: readonly string[];
}

export function parsePgtsSpec(spec: string): PgtsSpec {
  const [head = "", ...settings] = spec.split(":");
  const deno = head.startsWith("deno+");
  return {
    runtime: deno ? "deno" : "bun",
    adapter: deno ? head.slice("deno+".length) : head,
    settings,
  };
}

/** Initialises a pgts data directory (once) and starts the server `spec` names on it. */
export async function startPgts(
  spec: string,
  options: { dataDir?: string } = {},
): Promise<Server & { dataDir: string }> {
  const { runtime, adapter, settings } = parsePgtsSpec(spec);
  const scratch = options.dataDir === undefined
    ? mkdtempSync(join(tmpdir(), "pgts-bench-pgts-"))
    : null;
  const dir = options.dataDir ?? join(scratch!, "data");
  if (!existsSync(join(dir, "PGTS_VERSION"))) {
    const init = spawnSync(BUN, [join(ROOT, "mod.ts"), "init", "-D", dir], { cwd: ROOT });
    if (init.status !== 0) throw new Error(`pgts init failed: ${init.stderr}`);
  }
  const deno = runtime === "deno";
  const args = [
    ...(deno ? ["run", "-A"] : []),
    join(ROOT, "mod.ts"),
    "start",
    "-D",
    dir,
    "-p",
    "0",
    "-c",
    `unix_socket_directories=${dir}`,
    "-c",
    "listen_addresses=127.0.0.1",
    // `default`: no --adapter, whatever `pgts start` picks by itself.
    ...(adapter === "default" ? [] : ["--adapter", adapter]),
    ...settings.flatMap((s) => ["-c", s]),
  ];
  const proc = spawn(deno ? DENO : BUN, args, { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  proc.stderr!.on("data", (d: Uint8Array) => (err += new TextDecoder().decode(d)));
  const deadline = Date.now() + 120_000;
  for (;;) {
    const l = pidFile(dir);
    if (l[0] === String(proc.pid) && l[7]?.trim() === "ready") {
      return {
        name: "pgts",
        label: `pgts (--adapter ${spec})`,
        host: "127.0.0.1",
        port: Number(l[3]),
        pid: proc.pid!,
        dataDir: dir,
        async stop() {
          proc.kill("SIGINT");
          await waitExit(proc, 20_000);
          if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
          if (scratch !== null) rmSync(scratch, { recursive: true, force: true });
        },
      };
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      throw new Error(`pgts did not start:\n${err}`);
    }
    await sleep(50);
  }
}

/** The pids of `root` and all its descendants, from /proc. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // Gone while we looked.
    }
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** Summed Rss and Pss (KiB) of a process tree, and how many processes it has. */
export function treeMemory(root: number): { rssKiB: number; pssKiB: number; processes: number } {
  let rssKiB = 0, pssKiB = 0, processes = 0;
  for (const pid of processTree(root)) {
    try {
      const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
      rssKiB += Number(/^Rss:\s+(\d+)/m.exec(text)?.[1] ?? 0);
      pssKiB += Number(/^Pss:\s+(\d+)/m.exec(text)?.[1] ?? 0);
      processes++;
    } catch {
      // Gone while we looked.
    }
  }
  return { rssKiB, pssKiB, processes };
}

/** Runs pgbench against a server; resolves with its tps and average latency. */
export function pgbench(
  server: Server,
  args: string[],
): Promise<{ tps: number; latencyMs: number; failed: number; output: string }> {
  return new Promise((resolve) => {
    const proc = spawn(join(PG_BIN, "pgbench"), [
      "-h",
      server.host,
      "-p",
      String(server.port),
      "-U",
      "postgres",
      ...args,
      "postgres",
    ], { env: { ...process.env, PGSSLMODE: "disable" } });
    let output = "";
    proc.stdout.on("data", (d: Uint8Array) => (output += new TextDecoder().decode(d)));
    proc.stderr.on("data", (d: Uint8Array) => (output += new TextDecoder().decode(d)));
    proc.on("exit", () => {
      const num = (re: RegExp) => Number(re.exec(output)?.[1] ?? NaN);
      resolve({
        tps: num(/^tps = ([0-9.]+)/m),
        latencyMs: num(/^latency average = ([0-9.]+)/m),
        failed: num(/^number of failed transactions: (\d+)/m),
        output,
      });
    });
  });
}
