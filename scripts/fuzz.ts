/**
 * The protocol fuzzer (tests/helpers/fuzz.ts) against a server of its own,
 * at any size: random and mutated frontend messages in every state, in
 * rounds, a fresh client checked after each round, and the server's
 * processes, fds and RSS before and after. Run with
 *   ./node_modules/.bin/bun scripts/fuzz.ts [--messages 20000] [--seed 1] [--adapter inproc]
 *     [--flood 2000]
 * `--flood N` first opens N real connections (connect, `select 1`, end; 20
 * at a time) and prints the usage 3 s after them beside the baseline, and
 * how long the server took to come back within 10% of the baseline's RSS
 * (at most 30 s: an in-process server's memory is given back when the
 * garbage collector and the allocator's scavenger run, not at once).
 * Exits 1 when a health check failed or took 1 s or more, or when the
 * server's usage did not come back near the baseline.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import {
  FUZZ_HBA,
  healthCheck,
  prepareFuzzTarget,
  processUsage,
  runFuzz,
} from "../tests/helpers/fuzz.ts";

const ROOT = resolve(import.meta.dirname ?? ".", "..");
const BUN = join(ROOT, "node_modules/.bin/bun");
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

type Usage = ReturnType<typeof processUsage>;

/** Set when the flood's usage did not come back. */
let floodKept = false;

/**
 * Polls the server's usage once a second for up to `seconds` until it is
 * back near `before`: no more processes than one extra, a few fds, RSS
 * within 10%. `seconds: null` when it never was.
 */
async function settled(
  pid: number,
  before: Usage,
  seconds: number,
): Promise<{ usage: Usage; seconds: number | null }> {
  for (let waited = 0;; waited++) {
    const usage = processUsage(pid);
    const near = usage.processes <= before.processes + 1 && usage.fds <= before.fds + 8 &&
      usage.rssMiB <= before.rssMiB * 1.1;
    if (near) return { usage, seconds: waited };
    if (waited >= seconds) return { usage, seconds: null };
    await sleep(1000);
  }
}

const { values } = parseArgs({
  options: {
    messages: { type: "string", default: "20000" },
    seed: { type: "string", default: "1" },
    adapter: { type: "string" },
    concurrency: { type: "string", default: "4" },
    "big-bytes": { type: "string", default: String(1 << 20) },
    flood: { type: "string", default: "0" },
  },
});

const root = mkdtempSync(join(tmpdir(), "pgts-fuzz-"));
const dataDir = join(root, "d");
let server = null as ChildProcess | null;
let log = "";

async function main(): Promise<number> {
  const init = spawn(BUN, [join(ROOT, "mod.ts"), "init", "-D", dataDir], { stdio: "ignore" });
  if ((await new Promise((r) => init.on("exit", r))) !== 0) throw new Error("pgts init failed");
  writeFileSync(join(dataDir, "pg_hba.conf"), FUZZ_HBA);
  const args = [
    join(ROOT, "mod.ts"),
    "start",
    "-D",
    dataDir,
    "-p",
    "0",
    "-c",
    `unix_socket_directories=${dataDir}`,
    "-c",
    "authentication_timeout=2s",
  ];
  if (values.adapter !== undefined) args.push("--adapter", values.adapter);
  server = spawn(BUN, args, { stdio: ["ignore", "pipe", "pipe"] });
  server.stdout!.on("data", (c: Buffer) => (log = (log + c.toString()).slice(-200_000)));
  server.stderr!.on("data", (c: Buffer) => (log = (log + c.toString()).slice(-200_000)));
  let port = 0;
  for (let i = 0; i < 600 && port === 0; i++) {
    await sleep(100);
    try {
      const l = readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n");
      if (l[7]?.trim() === "ready") port = Number(l[3]);
    } catch {
      // not yet
    }
  }
  if (port === 0) throw new Error(`the server did not start:\n${log}`);
  const target = { host: "127.0.0.1", port, user: "postgres", passwordUser: "fuzz_pw" };
  await prepareFuzzTarget(target.host, port);
  for (let i = 0; i < 5; i++) await healthCheck(target);
  await sleep(1000);
  const before = processUsage(server.pid!);
  console.log(
    `adapter ${values.adapter ?? "default"}, seed ${values.seed}, ${values.messages} messages`,
  );
  console.log(`baseline: ${JSON.stringify(before)}`);
  const flood = Number(values.flood);
  if (flood > 0) {
    const t = performance.now();
    let next = 0;
    let failed = 0;
    const errors = new Map<string, number>();
    await Promise.all(Array.from({ length: 20 }, async () => {
      while (next < flood) {
        next++;
        await healthCheck(target).catch((e) => {
          failed++;
          const m = e instanceof Error ? e.message : String(e);
          errors.set(m, (errors.get(m) ?? 0) + 1);
        });
      }
    }));
    const s = ((performance.now() - t) / 1000).toFixed(1);
    await sleep(3000);
    const u = processUsage(server.pid!);
    if (errors.size > 0) console.log(`flood errors: ${JSON.stringify([...errors])}`);
    console.log(
      `flood of ${flood} connections in ${s} s (${failed} failed); 3 s later: ${JSON.stringify(u)}`,
    );
    const back = await settled(server.pid!, before, 27);
    console.log(
      back.seconds === null
        ? `not within 10% of the baseline's RSS 30 s after the flood: ${JSON.stringify(back.usage)}`
        : `within 10% of the baseline's RSS ${back.seconds + 3} s after the flood: ${
          JSON.stringify(back.usage)
        }`,
    );
    if (back.seconds === null) floodKept = true;
  }
  const t0 = performance.now();
  let slow = 0;
  const result = await runFuzz(target, {
    seed: Number(values.seed),
    messages: Number(values.messages),
    concurrency: Number(values.concurrency),
    bigBytes: Number(values["big-bytes"]),
    onRound: (r) => {
      if (r.healthMs === null || r.healthMs >= 1000) slow++;
      if (r.round % 50 === 0 || r.healthMs === null || r.healthMs >= 1000) {
        console.log(
          `round ${r.round}: ${r.sent} messages, ${r.connections} connections, health ${
            r.healthMs === null ? `FAILED ${r.healthError}` : `${r.healthMs.toFixed(0)} ms`
          }, ${JSON.stringify(processUsage(server!.pid!))}`,
        );
      }
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  const healths = result.rounds.map((r) => r.healthMs).filter((x): x is number => x !== null);
  healths.sort((a, b) => a - b);
  await sleep(3000);
  const finalMs = await healthCheck(target);
  const after = processUsage(server.pid!);
  console.log(
    `sent ${result.sent} messages over ${result.connections} connections in ${
      seconds.toFixed(0)
    } s (${JSON.stringify(result.byState)})`,
  );
  console.log(
    `health checks: ${result.rounds.length - slow} of ${result.rounds.length} under 1 s; median ${
      healths[Math.floor(healths.length / 2)]?.toFixed(0)
    } ms, max ${healths[healths.length - 1]?.toFixed(0)} ms; final ${finalMs.toFixed(0)} ms`,
  );
  console.log(`after (3 s later): ${JSON.stringify(after)}`);
  const back = await settled(server.pid!, before, 27);
  const near = back.seconds !== null;
  console.log(
    near
      ? `usage is back near the baseline (RSS within 10%) ${back.seconds! + 3} s after the fuzz: ${
        JSON.stringify(back.usage)
      }`
      : `usage did NOT come back within 30 s: ${JSON.stringify(back.usage)}`,
  );
  return slow === 0 && finalMs < 1000 && near && !floodKept ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  console.error(e);
  console.error(log.slice(-5000));
} finally {
  // A fast shutdown stops the children too; SIGKILL if it does not end.
  const s = server as ChildProcess | null;
  if (s !== null && s.exitCode === null) {
    const exited = new Promise((r) => s.once("exit", r));
    s.kill("SIGINT");
    await Promise.race([exited, sleep(10_000)]);
    s.kill("SIGKILL");
  }
  rmSync(root, { recursive: true, force: true });
}
process.exit(code);
