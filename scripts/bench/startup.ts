/**
 * `pgts start` on an existing data directory until its first answered
 * query, under each runtime (and a compiled binary when one is named), the
 * variants interleaved round by round so that the machine's load hits each
 * alike. Run with
 *   ./node_modules/.bin/bun scripts/bench/startup.ts [--rounds N] [--adapter A]
 *     [-c NAME=VALUE]... [VARIANT...]
 * (VARIANT: bun, deno (the default pair), bun:OTHER/mod.ts, deno:OTHER/mod.ts
 * or a compiled binary's path, each optionally followed by its own settings,
 * `,NAME=VALUE` each: `bun,shared_buffers=16MB`). `-c` settings go to every
 * variant's server, before its own.
 *
 * Per round and variant: spawn `pgts start -D d -p PORT`, then try a
 * node-postgres `select 1` every 5 ms until one answers; "ready" is when
 * postmaster.pid said so, "first query" when the answer came. Then a fast
 * shutdown and the next start. The data directory was made once by
 * `pgts init` and started and stopped once before the first round (PGlite's
 * first open of a new cluster does more than later ones).
 *
 * "CPU" is the server's user+system time (all its threads, from
 * /proc/PID/stat, Linux only, 10 ms ticks) when the first answer came: on a
 * shared machine it moves less with the load than the wall-clock times.
 *
 * With PGTS_STARTUP_TRACE=1 in the server's environment the server logs
 * where its start went (src/core/starttrace.ts), which this prints for the
 * last round.
 */

import { spawn, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import pg from "pg";

const ROOT = resolve(import.meta.dirname ?? ".", "../..");
const BUN = join(ROOT, "node_modules/.bin/bun");
const DENO = join(ROOT, "node_modules/.bin/deno");
const MOD = join(ROOT, "mod.ts");

const { values, positionals } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    adapter: { type: "string" },
    c: { type: "string", short: "c", multiple: true },
  },
  allowPositionals: true,
});
const rounds = Number(values.rounds);

interface Variant {
  readonly name: string;
  readonly command: readonly string[];
  /** `-c NAME=VALUE` arguments of this variant's server. */
  readonly settings: readonly string[];
  readonly ready: number[];
  readonly first: number[];
  readonly cpu: number[];
  log: string;
}

const scratch = mkdtempSync(join(tmpdir(), "pgts-bench-startup-"));
/**
 * A variant per argument: "bun" or "deno" (this checkout's mod.ts under that
 * runtime), "bun:PATH" or "deno:PATH" (another checkout's mod.ts, for an
 * A/B of two commits), or the path of a compiled binary (run from a copy).
 */
function variantOf(name: string, i: number): Variant {
  const [spec = "", ...own] = name.split(",");
  const settings = [...(values.c ?? []), ...own].flatMap((s) => ["-c", s]);
  const at = spec.indexOf(":");
  const runtime = at < 0 ? spec : spec.slice(0, at);
  const mod = at < 0 ? MOD : resolve(spec.slice(at + 1));
  const v = { name, settings, ready: [], first: [], cpu: [], log: "" };
  if (runtime === "bun") return { ...v, command: [BUN, mod] };
  if (runtime === "deno") return { ...v, command: [DENO, "run", "-A", mod] };
  const copy = join(scratch, `pgts${i}`);
  copyFileSync(spec, copy);
  chmodSync(copy, 0o755);
  return { ...v, command: [copy] };
}
const variants = (positionals.length > 0 ? positionals : ["bun", "deno"]).map(variantOf);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function pidLine(dataDir: string, n: number): string | undefined {
  try {
    return readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[n - 1]?.trim();
  } catch {
    return undefined;
  }
}

async function selectOne(port: number): Promise<boolean> {
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres" });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("select 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** A process's user+system CPU time so far (ms), all threads; NaN where /proc has none. */
function cpuMs(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command's closing parenthesis: state is the 3rd, utime the 14th.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10; // USER_HZ is 100 on Linux
  } catch {
    return NaN;
  }
}

/** A free port, so that the client can dial before postmaster.pid names one. */
function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen({ host: "127.0.0.1", port: 0 }, () => {
      const a = s.address();
      s.close(() => ok(typeof a === "object" && a !== null ? a.port : 0));
    });
  });
}

async function startOnce(
  v: Variant,
  dataDir: string,
): Promise<{ ready: number; first: number; cpu: number }> {
  const port = await freePort();
  const adapter = values.adapter === undefined ? [] : ["--adapter", values.adapter];
  const t0 = performance.now();
  const server = spawn(
    v.command[0]!,
    [...v.command.slice(1), "start", "-D", dataDir, "-p", String(port), ...adapter, ...v.settings],
    { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, NO_COLOR: "1" } },
  );
  let log = "";
  server.stderr.on("data", (b: Buffer) => (log += b.toString()));
  let ready = NaN;
  try {
    for (;;) {
      if (server.exitCode !== null) throw new Error(`${v.name}: pgts start exited:\n${log}`);
      if (performance.now() - t0 > 60_000) throw new Error(`${v.name}: no answer in 60 s`);
      if (Number.isNaN(ready) && pidLine(dataDir, 8) === "ready") ready = performance.now() - t0;
      if (await selectOne(port)) break;
      await sleep(5);
    }
    const first = performance.now() - t0;
    const cpu = cpuMs(server.pid);
    if (Number.isNaN(ready)) ready = first;
    return { ready, first, cpu };
  } finally {
    server.kill("SIGINT");
    await new Promise((r) => server.exitCode === null ? server.once("exit", r) : r(null));
    v.log = log;
  }
}

try {
  for (const [i, v] of variants.entries()) {
    const d = join(scratch, `d${i}`);
    const init = spawnSync(v.command[0]!, [...v.command.slice(1), "init", "-D", d], {
      cwd: ROOT,
      encoding: "utf8",
    });
    if (init.status !== 0) throw new Error(`${v.name} init: ${init.stderr}`);
    await startOnce(v, d);
  }
  for (let round = 0; round < rounds; round++) {
    for (const [i, v] of variants.entries()) {
      const r = await startOnce(v, join(scratch, `d${i}`));
      v.ready.push(r.ready);
      v.first.push(r.first);
      v.cpu.push(r.cpu);
    }
  }
  const adapter = values.adapter ?? "default";
  const common = values.c === undefined ? "" : `, -c ${values.c.join(" -c ")}`;
  console.log(
    `pgts start → first answered query, adapter ${adapter}${common}, ${rounds} rounds (median)`,
  );
  console.log("| | ready | first query | first query, each round | CPU | CPU, each round |");
  console.log("|---|---:|---:|---|---:|---|");
  const list = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(", ");
  for (const v of variants) {
    console.log(
      `| ${v.name} | ${median(v.ready).toFixed(0)} ms | ${median(v.first).toFixed(0)} ms | ${
        list(v.first)
      } | ${median(v.cpu).toFixed(0)} ms | ${list(v.cpu)} |`,
    );
  }
  for (const v of variants) {
    const trace = v.log.split("\n").filter((l) => l.includes("startup trace"));
    if (trace.length > 0) console.log(`\n${v.name}, last round:\n${trace.join("\n")}`);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
