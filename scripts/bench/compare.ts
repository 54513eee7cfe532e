/**
 * pgts side by side with pglite-socket and PostgreSQL 15, all on loopback in
 * one run, tests alternating between servers (the order rotates each round)
 * so that a noisy neighbour hits every server alike. Prints a table of TPS
 * and latency with ratios, idle memory per connection, the in-process
 * engine ceiling, the wire floor's rates (scripts/bench/floor.ts: canned
 * answers with no engine, the most any Bun server gets through pgbench and
 * loopback here), each pgts server's cancel latency (p50/p99 over 50
 * cancels of a CPU-bound statement), the targets met or missed, and writes
 * an SVG plot of select-only TPS against client count.
 *
 *   bash scripts/bench/run.sh [--quick] [--adapter inproc:engine_placement=inline:fsync=off,...] [--write]
 *
 * pglite-socket never fsyncs, so the pgts servers it is compared with run
 * with `fsync=off`; the last default server is pgts's durable default
 * (fsync on: one fdatasync per commit), printed beside them
 * (scripts/bench/fsync.ts measures what durability costs).
 *
 * --quick: one round of 2 s per test (about a minute of measuring);
 * default: 3 rounds of 10 s, after an untimed warm-up of each workload
 * (--warmup). --write also updates scripts/bench/results/ (the table and
 * plot the README shows). --durability runs the SIGKILL check
 * (scripts/bench/durability.ts) at the end; the full run always does.
 */

import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { BenchClient, closedLoop } from "./lib/client.ts";
import { type CancelLatency, measureCancelLatency } from "./lib/cancel.ts";
import { lineChart } from "./lib/plot.ts";
import {
  pgbench,
  ROOT,
  type Server,
  SHARED_BENCH,
  startPgliteSocket,
  startPgts,
  startPostgres,
  startWireFloor,
  treeMemory,
} from "./lib/servers.ts";

const { values: opts } = parseArgs({
  args: process.argv.slice(2),
  options: {
    quick: { type: "boolean", default: false },
    adapter: {
      type: "string",
      default:
        "inproc:fsync=off,inproc:engine_placement=inline:fsync=off,subprocess:fsync=off,inproc",
    },
    rounds: { type: "string" },
    duration: { type: "string" },
    warmup: { type: "string" },
    write: { type: "boolean", default: false },
    durability: { type: "boolean" },
    out: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (opts.help) {
  console.log(`pgts, pglite-socket and PostgreSQL 15 side by side on loopback, in one run.

Usage: bash scripts/bench/run.sh [OPTION]...

  --quick            one round of 2 s per test (about a minute of measuring)
  --rounds N         rounds per test (default 3; 1 with --quick)
  --duration S       seconds per test and round (default 10; 2 with --quick)
  --warmup S         seconds of each distinct workload per server before the timed
                     rounds, not counted (default 10; 2 with --quick; 0: none)
  --adapter LIST     the pgts servers, comma-separated, each ADAPTER[:NAME=VALUE...]
                     (deno+ADAPTER runs it under Deno); default
                     inproc:fsync=off,inproc:engine_placement=inline:fsync=off,subprocess:fsync=off,inproc
  --write            also update scripts/bench/results/ (the README's table and plot)
  --durability       run the SIGKILL durability check at the end (the full run always does)
  --out DIR          where the run writes its table and plot (default .tmp/bench/TIME)
  -h, --help         this text

The reference servers come from ../shared/bench (or BENCH_SHARED).`);
  process.exit(0);
}

const QUICK = opts.quick!;
const ROUNDS = Number(opts.rounds ?? (QUICK ? 1 : 3));
const DUR = Number(opts.duration ?? (QUICK ? 2 : 10));
const WARMUP = Number(opts.warmup ?? (QUICK ? 2 : 10));
/** CancelRequests per pgts server for the cancel latency. */
const CANCELS = QUICK ? 20 : 50;
/**
 * `adapter[:name=value...]`: a pgts server per entry, e.g. `bun`,
 * `inproc:engine_placement=inline`; `deno+inproc` runs that one under Deno.
 */
const PGTS = opts.adapter!.split(",").filter((a) => a !== "").map((spec) => {
  const [head, ...settings] = spec.split(":");
  return {
    spec,
    label: `pgts ${head}${settings.length > 0 ? ` (${settings.join(", ")})` : ""}`,
  };
});
const ADAPTERS = PGTS.map((p) => p.label);
const IDLE_CONNECTIONS = 50;
/** Plot colours of the pgts servers; pglite-socket is blue, PostgreSQL green. */
const PGTS_COLORS = ["#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"];
const PLOT_CLIENTS = [1, 2, 4, 8, 16];
const OUT = opts.out ?? join(ROOT, ".tmp/bench", new Date().toISOString().replace(/[:.]/g, "-"));
mkdirSync(OUT, { recursive: true });

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
const median = (xs: number[]) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const log = (line: string) => {
  console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
};

interface Test {
  readonly id: string;
  readonly label: string;
  readonly run: (
    s: Server,
    seconds: number,
  ) => Promise<{ tps: number; latencyMs: number; failed?: number }>;
}

const pgb = (...args: string[]) => (s: Server, seconds: number) =>
  pgbench(s, [...args, "-T", String(seconds)]);
const TESTS: Test[] = [
  {
    id: "conn_c4",
    label: "connections/s: pgbench -n -C -S -c 4",
    run: pgb("-n", "-C", "-S", "-c", "4"),
  },
  {
    id: "select1_c4",
    label: "SELECT 1, bench client, 4 connections",
    run: (s, seconds) => closedLoop(s, { clients: 4, durationMs: seconds * 1000, sql: "SELECT 1" }),
  },
  ...(QUICK ? [] : [{
    id: "select1_pgbench_c4",
    label: "SELECT 1: pgbench -n -f select1.sql -c 4",
    run: pgb("-n", "-f", join(SHARED_BENCH, "select1.sql"), "-c", "4"),
  }]),
  ...PLOT_CLIENTS.map((c) => ({
    id: `sel_c${c}`,
    label: `select-only: pgbench -n -S -c ${c}`,
    run: pgb("-n", "-S", "-c", String(c)),
  })),
  { id: "tpcb_c4", label: "TPC-B: pgbench -n -c 4", run: pgb("-n", "-c", "4") },
];
/** The tests the wire floor runs too: the ones where the wire is most of the cost. */
const FLOOR_TESTS = new Set(["conn_c4", "select1_c4", "select1_pgbench_c4", "sel_c4"]);
const FLOOR = "wire floor (bun)";

// ---- servers ---------------------------------------------------------------

const load0 = loadavg();
log(
  `load average at start: ${load0}; ${WARMUP} s warm-up, ${ROUNDS} round(s) of ${DUR} s per test; out ${OUT}`,
);
const servers: Server[] = [];
/** Started servers outside `servers` (the wire floor), stopped with them. */
const extras: Server[] = [];
const stopAll = async () => {
  for (const s of [...servers.splice(0), ...extras.splice(0)]) await s.stop().catch(() => {});
};
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => void stopAll().then(() => process.exit(130)));
}

try {
  for (const p of PGTS) {
    const s = await startPgts(p.spec);
    servers.push({ ...s, label: p.label });
    log(`started ${s.label} on port ${s.port}`);
  }
  const peer = await startPgliteSocket("bun");
  servers.push(peer);
  log(`started ${peer.label} on port ${peer.port}`);
  const pg = await startPostgres();
  servers.push(pg);
  log(`started ${pg.label} on port ${pg.port}`);
  // Not in `servers`: it has no tables and no memory worth measuring.
  const floor = await startWireFloor();
  extras.push(floor);
  const withFloor = (t: Test) => (FLOOR_TESTS.has(t.id) ? [...servers, floor] : servers);
  log(`started ${floor.label} on port ${floor.port}`);

  for (const s of servers) {
    const init = await pgbench(s, ["-i", "-s", "1", "-I", "dtGvp"]);
    if (!/done in/.test(init.output)) throw new Error(`pgbench -i on ${s.label}:\n${init.output}`);
  }
  log("pgbench tables initialised (scale 1) on every server");

  // ---- idle memory per connection ------------------------------------------
  const memory = new Map<
    string,
    { perConnKiB: number; perConnPssKiB: number; one: number; many: number }
  >();
  for (const s of servers) {
    const first = await BenchClient.connect(s);
    await sleep(1000);
    const one = treeMemory(s.pid);
    const rest: BenchClient[] = [];
    for (let i = 1; i < IDLE_CONNECTIONS; i += 7) {
      const batch = Math.min(7, IDLE_CONNECTIONS - i);
      rest.push(...await Promise.all(Array.from({ length: batch }, () => BenchClient.connect(s))));
    }
    await sleep(2000);
    const many = treeMemory(s.pid);
    for (const c of [first, ...rest]) c.close();
    memory.set(s.label, {
      perConnKiB: (many.rssKiB - one.rssKiB) / (IDLE_CONNECTIONS - 1),
      perConnPssKiB: (many.pssKiB - one.pssKiB) / (IDLE_CONNECTIONS - 1),
      one: one.rssKiB,
      many: many.rssKiB,
    });
    log(
      `${s.label}: RSS ${one.rssKiB} KiB (${one.processes} processes) with 1 idle connection, ${many.rssKiB} KiB (${many.processes}) with ${IDLE_CONNECTIONS}`,
    );
    await sleep(1500); // let the backends go before the timed runs
  }

  // ---- warm-up ---------------------------------------------------------------
  // JavaScriptCore runs PGlite's WebAssembly through tiers, compiling a
  // function better as it gets hot, on threads that share the machine's 2
  // CPUs with the servers and pgbench: a pgts engine just started answered
  // TPC-B's statements in ~150 µs each for its first 3,000, ~31 µs after
  // 15,000 (its first 3 s ran at a third of its later TPS, and it reached
  // its plateau after ~12 s). Each server runs each distinct workload once,
  // untimed, as any benchmark warms up first.
  if (WARMUP > 0) {
    const distinct = TESTS.filter((t) => !/^sel_c/.test(t.id) || t.id === "sel_c4");
    for (const t of distinct) for (const s of withFloor(t)) await t.run(s, WARMUP);
    log(`warmed up: ${distinct.map((t) => t.id).join(", ")} for ${WARMUP} s on every server`);
  }

  // ---- timed runs, alternating --------------------------------------------
  const results = new Map<string, { tps: number[]; lat: number[]; failed: number }>();
  for (let r = 0; r < ROUNDS; r++) {
    for (const t of TESTS) {
      const on = withFloor(t);
      const k = (r + TESTS.indexOf(t)) % on.length;
      for (const s of [...on.slice(k), ...on.slice(0, k)]) {
        const res = await t.run(s, DUR);
        const key = `${t.id}|${s.label}`;
        const acc = results.get(key) ?? { tps: [], lat: [], failed: 0 };
        acc.tps.push(res.tps);
        acc.lat.push(res.latencyMs);
        acc.failed += res.failed ?? 0;
        results.set(key, acc);
        log(
          `r${r + 1} ${t.id} ${s.label}: tps ${res.tps.toFixed(0)} lat ${
            res.latencyMs.toFixed(3)
          } ms`,
        );
      }
    }
  }
  const load1 = loadavg();

  // ---- in-process ceiling ----------------------------------------------------
  log("in-process engine ceiling");
  const ceiling = await new Promise<Record<string, { select1: number; selectOnly: number }>>(
    (resolve, reject) => {
      const p = spawn(join(ROOT, "node_modules/.bin/bun"), [
        join(ROOT, "scripts/bench/engine-select1.ts"),
        "--ceiling",
        String(DUR),
        "4",
      ], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      p.stdout!.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
      p.on("exit", (code) => {
        try {
          resolve(JSON.parse(out.trim().split("\n").pop()!));
        } catch {
          reject(new Error(`ceiling run failed (${code}): ${out}`));
        }
      });
    },
  );

  await stopAll();

  let durability: string | null = null;
  if (opts.durability ?? !QUICK) {
    log("durability: SIGKILL of each pgts process kind during autocommit inserts");
    durability = await new Promise<string>((resolve) => {
      const p = spawn(join(ROOT, "node_modules/.bin/bun"), [
        join(ROOT, "scripts/bench/durability.ts"),
        "--adapter",
        PGTS[0]!.spec,
      ], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      p.stdout!.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
      p.on("exit", () => resolve(out.trim()));
    });
  }

  // Cancel latency of each pgts server (a server of its own each, after the rest).
  const cancels: CancelLatency[] = [];
  for (const p of PGTS) {
    log(`cancel latency: ${CANCELS} cancels of a CPU-bound statement, ${p.label}`);
    cancels.push(await measureCancelLatency(p.spec, CANCELS));
  }

  // ---- report ----------------------------------------------------------------
  const names = [
    ...ADAPTERS.map((a) => a),
    "pglite-socket (bun)",
    "PostgreSQL 15",
  ];
  const tps = (test: string, label: string) => median(results.get(`${test}|${label}`)?.tps ?? []);
  const lat = (test: string, label: string) => median(results.get(`${test}|${label}`)?.lat ?? []);
  const fmt = (x: number) => Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "n/a";
  const ratio = (a: number, b: number) => Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : "n/a";
  const PEER = "pglite-socket (bun)", PG = "PostgreSQL 15";
  // Each pgts server against the ceiling of the placement its engine child uses.
  const ceilingFor = (test: string, label: string): number => {
    const c = label.includes("engine_placement=inline") ? ceiling.inline : ceiling.worker;
    if (c === undefined) return NaN;
    if (test.startsWith("select1")) return c.select1;
    if (test === "sel_c4") return c.selectOnly;
    return NaN;
  };

  const lines: string[] = [];
  lines.push(
    `${QUICK ? "Quick run" : "Run"} of ${
      new Date().toISOString().slice(0, 16)
    }Z: ${ROUNDS} round(s) × ${DUR} s per test after a ${WARMUP} s warm-up of each workload, median TPS (average latency ms). Load average ${load0} at start, ${load1} after the timed runs (${
      (await import("node:os")).cpus().length
    } CPUs).`,
    "",
    `| test | ${names.join(" | ")} | ${
      ADAPTERS.map((a) => `${a} / pglite-socket | ${a} / PG 15 | ${a} / ceiling`)
        .join(" | ")
    } |`,
    `|---|${names.map(() => "---:").join("|")}|${ADAPTERS.map(() => "---:|---:|---:").join("|")}|`,
  );
  for (const t of TESTS) {
    const cells = names.map((n) => `${fmt(tps(t.id, n))} (${lat(t.id, n).toFixed(2)})`);
    const ratios = ADAPTERS.flatMap((a) => {
      const mine = tps(t.id, a);
      return [
        ratio(mine, tps(t.id, PEER)),
        ratio(mine, tps(t.id, PG)),
        ratio(mine, ceilingFor(t.id, a)),
      ];
    });
    lines.push(`| ${t.label} | ${cells.join(" | ")} | ${ratios.join(" | ")} |`);
  }
  lines.push(
    "",
    `In-process engine ceiling (4 engine sessions driven in one process, no sockets): ${
      Object.entries(ceiling).map(([p, c]) =>
        `${p} placement SELECT 1 ${fmt(c.select1)} TPS, select-only ${fmt(c.selectOnly)} TPS`
      ).join("; ")
    }. pgts's engine child uses the worker placement unless engine_placement=inline.`,
    "",
    `The wire floor (scripts/bench/floor.ts: a Bun server that answers every query with a canned row, no engine, no sessions; what the runtime's sockets, loopback and pgbench leave for any server on this machine): ${
      TESTS.filter((t) => FLOOR_TESTS.has(t.id)).map((t) =>
        `${t.label} ${fmt(tps(t.id, FLOOR))} TPS, ${
          ratio(tps(t.id, FLOOR), tps(t.id, PEER))
        } pglite-socket's`
      ).join("; ")
    }.`,
    "",
    `| idle memory | ${names.join(" | ")} |`,
    `|---|${names.map(() => "---:").join("|")}|`,
    `| RSS, 1 idle connection (all processes) | ${
      names.map((n) => `${fmt((memory.get(n)?.one ?? NaN) / 1024)} MiB`).join(" | ")
    } |`,
    `| RSS, ${IDLE_CONNECTIONS} idle connections | ${
      names.map((n) => `${fmt((memory.get(n)?.many ?? NaN) / 1024)} MiB`).join(" | ")
    } |`,
    `| RSS per connection ((${IDLE_CONNECTIONS} − 1) ÷ ${IDLE_CONNECTIONS - 1}) | ${
      names.map((n) => `${((memory.get(n)?.perConnKiB ?? NaN) / 1024).toFixed(2)} MiB`).join(" | ")
    } |`,
    `| PSS per connection | ${
      names.map((n) => `${((memory.get(n)?.perConnPssKiB ?? NaN) / 1024).toFixed(2)} MiB`).join(
        " | ",
      )
    } |`,
  );

  // Targets of issue 19 (the default server), per adapter.
  lines.push("", "Targets:");
  const pgMem = memory.get(PG)?.perConnKiB ?? NaN;
  for (const a of ADAPTERS) {
    const me = a;
    const check = (what: string, value: number, goal: number) =>
      lines.push(
        Number.isFinite(value)
          ? `- ${me}: ${what} ${value.toFixed(2)}× (target ≥ ${goal}×) ${
            value >= goal ? "met" : "NOT met"
          }`
          : `- ${me}: ${what}: not measured in this run (target ≥ ${goal}×)`,
      );
    // Where the wire floor itself stays under a target, no server here can meet it.
    const floorSays = (test: string, goal: number) => {
      const f = tps(test, FLOOR) / tps(test, PEER);
      if (!Number.isFinite(f)) return;
      lines.push(
        `  (the wire floor: ${f.toFixed(2)}× pglite-socket${
          f < goal ? `, under the target itself: out of reach of any server on this runtime` : ""
        }; ${me} reaches ${((100 * tps(test, me)) / tps(test, FLOOR)).toFixed(0)}% of it)`,
      );
    };
    check("connections/s vs pglite-socket", tps("conn_c4", me) / tps("conn_c4", PEER), 1.5);
    floorSays("conn_c4", 1.5);
    check("connections/s vs PostgreSQL 15", tps("conn_c4", me) / tps("conn_c4", PG), 10);
    check("SELECT 1 -c 4 vs pglite-socket", tps("select1_c4", me) / tps("select1_c4", PEER), 1.5);
    floorSays("select1_c4", 1.5);
    check(
      "SELECT 1 (pgbench script) -c 4 vs pglite-socket",
      tps("select1_pgbench_c4", me) / tps("select1_pgbench_c4", PEER),
      1.5,
    );
    floorSays("select1_pgbench_c4", 1.5);
    check("SELECT 1 -c 4 vs ceiling", tps("select1_c4", me) / ceilingFor("select1_c4", me), 0.7);
    check("select-only -c 4 vs pglite-socket", tps("sel_c4", me) / tps("sel_c4", PEER), 1.5);
    check("select-only -c 4 vs ceiling", tps("sel_c4", me) / ceilingFor("sel_c4", me), 0.7);
    check("TPC-B -c 4 vs pglite-socket", tps("tpcb_c4", me) / tps("tpcb_c4", PEER), 1.2);
    const mem = memory.get(me)?.perConnKiB ?? NaN;
    lines.push(
      `- ${me}: idle RSS per connection ${(mem / 1024).toFixed(2)} MiB vs PostgreSQL 15's ${
        (pgMem / 1024).toFixed(2)
      } MiB = ${(mem / pgMem).toFixed(2)}× (target ≤ 2×) ${mem <= 2 * pgMem ? "met" : "NOT met"}`,
    );
  }
  lines.push(
    "",
    `Cancel latency (${CANCELS} CancelRequests, each of a CPU-bound statement that has run 100–150 ms; ms from the request's send to the client's 57014; scripts/bench/cancel-latency.ts):`,
    "",
    "| server | cancelled | lost | p50 ms | p99 ms | max ms |",
    "|---|---:|---:|---:|---:|---:|",
    ...cancels.map((c, i) =>
      `| ${PGTS[i]!.label} | ${c.n} | ${c.lost} | ${c.p50.toFixed(1)} | ${c.p99.toFixed(1)} | ${
        c.max.toFixed(1)
      } |`
    ),
  );
  if (durability !== null) {
    lines.push("", "Durability (SIGKILL during autocommit inserts):", "", durability);
  }

  const svg = lineChart("select-only TPS vs clients (pgbench -n -S, scale 1)", {
    x: PLOT_CLIENTS,
    xLabel: "clients (pgbench -c)",
    yLabel: "TPS",
    series: names.map((n, i) => ({
      name: n,
      color: n === PEER ? "#1f77b4" : n === PG ? "#2ca02c" : PGTS_COLORS[i % PGTS_COLORS.length]!,
      values: PLOT_CLIENTS.map((c) => tps(`sel_c${c}`, n)),
    })),
  });
  const table = lines.join("\n") + "\n";
  writeFileSync(join(OUT, "results.md"), table);
  writeFileSync(join(OUT, "tps-vs-clients.svg"), svg);
  writeFileSync(
    join(OUT, "results.json"),
    JSON.stringify(
      {
        load0,
        load1,
        memory: Object.fromEntries(memory),
        ceiling,
        results: Object.fromEntries(results),
      },
      null,
      1,
    ),
  );
  if (opts.write) {
    const dir = join(ROOT, "scripts/bench/results");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "results.md"), table);
    writeFileSync(join(dir, "tps-vs-clients.svg"), svg);
  }
  console.log(table);
  log(`written to ${OUT}${opts.write ? " and scripts/bench/results/" : ""}`);
} finally {
  await stopAll();
}
process.exit(0);
