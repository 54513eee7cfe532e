/**
 * Child start latency, idle RSS and client hand-off latency per adapter
 * available in the current runtime. Run with
 *   ./node_modules/.bin/bun scripts/bench/children.ts
 *   npx deno run -A scripts/bench/children.ts
 *
 * - start: launch() until the child main posts "ready", median of 20;
 * - idle RSS: 10 idle children at once; for subprocesses the sum of their
 *   VmRSS from /proc divided by 10, for workers the postmaster's own RSS
 *   growth divided by 10 (a worker's or an in-process task's memory is the
 *   process's);
 * - hand-off: client connect until the first byte from a child started for
 *   that connection, median of 20.
 */

import fs from "node:fs";
import net from "node:net";
import process from "node:process";
import type { ChildLauncher, ChildProcess, NetAdapter } from "../../src/core/adapter.ts";

const MAINS = new URL("../../tests/helpers/child_mains.ts", import.meta.url).href;
const RUNS = 20;
const IDLE = 10;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function ready(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.onMessage = (m) => m === "ready" && resolve()));
}

function launchIdle(launcher: ChildLauncher): Promise<ChildProcess> {
  return launcher.launch({
    kind: "bench",
    name: "idle",
    entry: { module: MAINS, export: "idleMain" },
    params: null,
  });
}

async function startLatency(launcher: ChildLauncher): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const child = await launchIdle(launcher);
    await ready(child);
    times.push(performance.now() - t0);
    child.signal("SIGTERM");
    await child.exited;
  }
  return median(times);
}

function vmRssKiB(pid: number | "self"): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

async function idleRss(launcher: ChildLauncher, inProcess: boolean): Promise<number> {
  const before = vmRssKiB("self");
  const children: ChildProcess[] = [];
  for (let i = 0; i < IDLE; i++) {
    const child = await launchIdle(launcher);
    await ready(child);
    children.push(child);
  }
  await new Promise((r) => setTimeout(r, 500));
  const kib = inProcess
    ? vmRssKiB("self") - before
    : children.reduce((sum, c) => sum + vmRssKiB(c.pid), 0);
  for (const c of children) c.signal("SIGTERM");
  await Promise.all(children.map((c) => c.exited));
  return kib / IDLE / 1024;
}

async function handoffLatency(launcher: ChildLauncher, adapter: NetAdapter): Promise<number> {
  const kids: Promise<unknown>[] = [];
  const listener = await adapter.listen({ family: "tcp", host: "127.0.0.1", port: 0 }, (conn) => {
    void launcher.launch({
      kind: "backend",
      name: "client backend",
      entry: { module: MAINS, export: "clientMain" },
      params: null,
      client: conn,
    }).then((c) => kids.push(c.exited));
  });
  const port = (listener.address as { port: number }).port;
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      const c = net.connect(port, "127.0.0.1");
      c.once("data", () => {
        times.push(performance.now() - t0);
        c.write("quit\n");
        c.on("close", () => resolve());
      });
    });
  }
  await Promise.all(kids);
  await listener.close();
  return median(times);
}

interface Case {
  name: string;
  launcher: ChildLauncher;
  net: NetAdapter;
  inProcess: boolean;
}

async function cases(): Promise<Case[]> {
  const { WorkerLauncher } = await import("../../src/adapters/worker/launcher.ts");
  const { InprocLauncher } = await import("../../src/adapters/inproc/mod.ts");
  const { NodeSocketNetAdapter } = await import("../../src/adapters/node/nodenet.ts");
  // Children as tasks in this realm (`--adapter inproc`): the floor.
  const inproc: Case = {
    name: "inproc (task)",
    launcher: new InprocLauncher(),
    net: new NodeSocketNetAdapter(),
    inProcess: true,
  };
  if ("Bun" in globalThis) {
    const { BunSubprocessLauncher } = await import("../../src/adapters/bun/launcher.ts");
    const { BunNetAdapter } = await import("../../src/adapters/bun/net.ts");
    return [
      {
        name: "bun subprocess (stdio fd)",
        launcher: new BunSubprocessLauncher(),
        net: new BunNetAdapter(),
        inProcess: false,
      },
      {
        name: "bun subprocess (node:net, stdio fd)",
        launcher: new BunSubprocessLauncher(),
        net: new NodeSocketNetAdapter(),
        inProcess: false,
      },
      {
        name: "bun subprocess (ipc send)",
        launcher: new BunSubprocessLauncher({ handoff: "ipc" }),
        net: new NodeSocketNetAdapter(),
        inProcess: false,
      },
      {
        name: "bun worker (relay)",
        launcher: new WorkerLauncher(),
        net: new BunNetAdapter(),
        inProcess: true,
      },
      inproc,
    ];
  }
  const { DenoSubprocessLauncher } = await import("../../src/adapters/deno/launcher.ts");
  const { DenoNetAdapter } = await import("../../src/adapters/deno/net.ts");
  return [
    {
      name: "deno subprocess (fork, ipc send)",
      launcher: new DenoSubprocessLauncher(),
      net: new DenoNetAdapter(),
      inProcess: false,
    },
    {
      name: "deno worker (relay)",
      launcher: new WorkerLauncher(),
      net: new DenoNetAdapter(),
      inProcess: true,
    },
    inproc,
  ];
}

const rows: string[][] = [];
for (const c of await cases()) {
  // The ipc case differs from the stdio one only in hand-off; its start and
  // RSS are the same children.
  const handoffOnly = (c.name.includes("ipc send") || c.name.includes("node:net")) &&
    c.name.startsWith("bun");
  const start = handoffOnly ? NaN : await startLatency(c.launcher);
  const rss = handoffOnly ? NaN : await idleRss(c.launcher, c.inProcess);
  const handoff = await handoffLatency(c.launcher, c.net);
  await c.launcher.close();
  rows.push([
    c.name,
    Number.isNaN(start) ? "=" : start.toFixed(1),
    Number.isNaN(rss) ? "=" : rss.toFixed(1),
    handoff.toFixed(1),
  ]);
}
const header = ["adapter", "start ms (median 20)", "idle RSS MiB/child", "hand-off ms (median 20)"];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ");
const runtime = "Bun" in globalThis
  ? `bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
  : `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`;
console.log(`${runtime}, ${RUNS} runs, ${IDLE} idle children`);
console.log(line(header));
console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
for (const r of rows) console.log(line(r));
process.exit(0);
