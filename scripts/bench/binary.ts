/**
 * The compiled binary against `bun mod.ts`, side by side in one run. Run with
 *   bash scripts/build && ./node_modules/.bin/bun scripts/bench/binary.ts [BINARY...]
 * (default BINARY: dist/pgts). Each binary is copied to an empty directory
 * first, as a user would install it.
 *
 * Per variant, on a fresh data directory:
 * - init: `pgts init -D d` (PGlite's initdb), wall clock;
 * - ready: `pgts start` spawned until postmaster.pid line 8 says "ready";
 * - first query: `pgts start` spawned until a client's first `select 1`
 *   returned (ready, plus connecting to a new backend);
 * - connection: a new client connects, runs `select 1` and ends, median of
 *   20; each connection starts a backend child, so this is the child start
 *   latency as a client sees it;
 * - child start: the Bun subprocess launcher starts a child whose main
 *   returns at once (the built-in trivial startup process), until it has
 *   exited, median of 20: the cost of one more process of this binary (or
 *   of `bun src/adapters/bun/child.ts`).
 */

import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import pg from "pg";
import { BunSubprocessLauncher } from "../../src/adapters/bun/launcher.ts";
import { TRIVIAL_STARTUP_ENTRY } from "../../src/core/postmaster/auxmains.ts";
import type { ChildEntry } from "../../src/core/adapter.ts";

const ROOT = resolve(import.meta.dirname ?? ".", "../..");
const BUN = join(ROOT, "node_modules/.bin/bun");
const RUNS = 20;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Variant {
  readonly name: string;
  /** argv prefix that runs `pgts`. */
  readonly command: readonly string[];
  /** argv of a child, and the entry of the trivial startup main in it. */
  readonly child: { readonly command: readonly string[]; readonly entry: ChildEntry };
  readonly cwd: string;
  /** Removed afterwards. */
  readonly dir: string;
}

interface Result {
  init: number;
  ready: number;
  firstQuery: number;
  connection: number;
  childStart: number;
}

function pidLine(dataDir: string, n: number): string | undefined {
  try {
    return readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[n - 1]?.trim();
  } catch {
    return undefined;
  }
}

async function selectOne(port: number): Promise<void> {
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres" });
  await client.connect();
  try {
    await client.query("select 1");
  } finally {
    await client.end();
  }
}

async function measure(v: Variant): Promise<Result> {
  const run = (args: string[]) => {
    const t0 = performance.now();
    const r = spawnSync(v.command[0]!, [...v.command.slice(1), ...args], {
      cwd: v.cwd,
      encoding: "utf8",
    });
    if (r.status !== 0) throw new Error(`${v.name} ${args.join(" ")}: ${r.stderr}`);
    return performance.now() - t0;
  };
  const d = join(v.dir, "d");
  const init = run(["init", "-D", d]);
  const t0 = performance.now();
  const server = spawn(
    v.command[0]!,
    [...v.command.slice(1), "start", "-D", d, "-p", "0", "-c", `unix_socket_directories=${d}`],
    { cwd: v.cwd, stdio: "ignore" },
  );
  try {
    while (pidLine(d, 8) !== "ready") {
      if (server.exitCode !== null) throw new Error(`${v.name}: pgts start exited`);
      if (performance.now() - t0 > 60_000) throw new Error(`${v.name}: not ready in 60 s`);
      await sleep(5);
    }
    const ready = performance.now() - t0;
    const port = Number(pidLine(d, 4));
    await selectOne(port);
    const firstQuery = performance.now() - t0;
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const c0 = performance.now();
      await selectOne(port);
      times.push(performance.now() - c0);
    }
    run(["stop", "-D", d]);
    return { init, ready, firstQuery, connection: median(times), childStart: 0 };
  } finally {
    if (server.exitCode === null) server.kill("SIGQUIT");
  }
}

async function childStart(v: Variant): Promise<number> {
  const launcher = new BunSubprocessLauncher({ command: v.child.command });
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const child = await launcher.launch({
      kind: "startup",
      name: "startup",
      entry: v.child.entry,
      params: null,
    });
    const exit = await child.exited;
    if (exit.code !== 0) throw new Error(`${v.name}: child exited ${JSON.stringify(exit)}`);
    times.push(performance.now() - t0);
  }
  return median(times);
}

function sizeOf(path: string): string {
  const bytes = statSync(path).size;
  return `${(bytes / 2 ** 20).toFixed(1)} MiB (${bytes.toLocaleString("en")} B)`;
}

const binaries = process.argv.slice(2);
if (binaries.length === 0) binaries.push(join(ROOT, "dist/pgts"));

const variants: Variant[] = [];
const scratch = mkdtempSync(join(tmpdir(), "pgts-bench-binary-"));
try {
  const modDir = join(scratch, "mod");
  mkdirSync(modDir);
  variants.push({
    name: "bun mod.ts",
    command: [BUN, join(ROOT, "mod.ts")],
    child: {
      command: [BUN, join(ROOT, "src/adapters/bun/child.ts"), "--pgts-child"],
      entry: TRIVIAL_STARTUP_ENTRY,
    },
    cwd: ROOT,
    dir: modDir,
  });
  for (const [i, bin] of binaries.entries()) {
    const dir = join(scratch, `bin${i}`);
    mkdirSync(dir);
    copyFileSync(bin, join(dir, "pgts"));
    chmodSync(join(dir, "pgts"), 0o755);
    console.log(`${bin}: ${sizeOf(bin)}`);
    variants.push({
      name: bin,
      command: ["./pgts"],
      // Inside the binary every module's URL is the binary's (src/server/mains.ts).
      child: {
        command: [join(dir, "pgts"), "--pgts-child"],
        entry: { module: "file:///$bunfs/root/pgts", export: TRIVIAL_STARTUP_ENTRY.export },
      },
      cwd: dir,
      dir,
    });
  }
  const results: Result[] = [];
  for (const v of variants) results.push(await measure(v));
  // Interleaved, so that a change in the machine's load hits every variant.
  const starts: number[][] = variants.map(() => []);
  for (let round = 0; round < 3; round++) {
    for (const [i, v] of variants.entries()) starts[i]!.push(await childStart(v));
  }
  for (const [i, r] of results.entries()) r.childStart = median(starts[i]!);
  const base = results[0]!;
  const row = (label: string, key: keyof Result) => {
    const cells = results.map((r, i) => {
      const ratio = i === 0 ? "" : ` (×${(r[key] / base[key]).toFixed(2)})`;
      return `${r[key].toFixed(key === "connection" || key === "childStart" ? 1 : 0)} ms${ratio}`;
    });
    console.log(`| ${label} | ${cells.join(" | ")} |`);
  };
  console.log(`| | ${variants.map((v) => v.name).join(" | ")} |`);
  console.log(`|---|${variants.map(() => "---").join("|")}|`);
  row("init", "init");
  row("start → ready", "ready");
  row("start → first query", "firstQuery");
  row(`connection + select 1 (median of ${RUNS})`, "connection");
  row(`child start to exit (median of 3 × ${RUNS})`, "childStart");
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
