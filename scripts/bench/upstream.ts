/**
 * pgts in front of PostgreSQL 15 against PostgreSQL 15 directly, side by
 * side in one run. Run with
 *   ./node_modules/.bin/bun scripts/bench/upstream.ts [-T SECONDS] [-c CLIENTS] [-r ROUNDS] [-s SCALE]
 * (defaults: -T 10 -c 4 -r 3 -s 10; needs root or a user that can run postgres).
 *
 * It starts a throwaway PostgreSQL 15 (initdb into a temp dir, run as the
 * "postgres" OS user when root, SCRAM for TCP), `pgts start --engine URL`
 * in front of it, loads pgbench's tables once, then runs pgbench
 * select-only (-S) and TPC-B (the default script) with -c CLIENTS -j 2 over
 * TCP, alternating direct and through pgts (the order flips every round so
 * neither side always runs on a warmer cache). It prints every run and, per
 * workload, the median TPS of each side and their ratio. Everything is
 * stopped and removed at the end, also on failure.
 */

import { spawn, spawnSync } from "node:child_process";
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";

const ROOT = resolve(import.meta.dirname ?? ".", "../..");
const PG_BIN = "/usr/lib/postgresql/15/bin";
const BUN = join(ROOT, "node_modules/.bin/bun");
const PASSWORD = "bench";

const { values } = parseArgs({
  options: {
    T: { type: "string", short: "T", default: "10" },
    c: { type: "string", short: "c", default: "4" },
    r: { type: "string", short: "r", default: "3" },
    s: { type: "string", short: "s", default: "10" },
  },
});
const seconds = Number(values.T);
const clients = Number(values.c);
const rounds = Number(values.r);
const scale = Number(values.s);

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

async function until(what: string, check: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const dir = mkdtempSync(join(tmpdir(), "pgts-bench-upstream-"));
const children: ReturnType<typeof spawn>[] = [];
let pgPid = 0;

async function main(): Promise<void> {
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
  const pgPort = await freePort();
  const pgCmd = asUser([
    `${PG_BIN}/postgres`,
    "-D",
    data,
    "-p",
    String(pgPort),
    "-k",
    dir,
    "-c",
    "listen_addresses=127.0.0.1",
    "-c",
    "fsync=off",
  ]);
  const pg = spawn(pgCmd[0]!, pgCmd.slice(1), { stdio: "ignore" });
  children.push(pg);
  await until(
    "postgres",
    () => spawnSync(`${PG_BIN}/pg_isready`, ["-q", "-h", dir, "-p", String(pgPort)]).status === 0,
  );
  pgPid = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);

  const front = join(dir, "front");
  must([BUN, join(ROOT, "mod.ts"), "init", "-D", front]);
  const url = `postgres://postgres:${PASSWORD}@127.0.0.1:${pgPort}/postgres`;
  const pgts = spawn(BUN, [
    join(ROOT, "mod.ts"),
    "start",
    "-D",
    front,
    "-p",
    "0",
    "-c",
    `unix_socket_directories=${front}`,
    "--engine",
    url,
  ], { cwd: ROOT, stdio: "ignore", detached: true });
  children.push(pgts);
  let pgtsPort = 0;
  await until("pgts", () => {
    try {
      const l = readFileSync(join(front, "postmaster.pid"), "utf8").split("\n");
      if (l[7]?.trim() !== "ready") return false;
      pgtsPort = Number(l[3]);
      return true;
    } catch {
      return false;
    }
  });

  const env = {
    PGHOST: "127.0.0.1",
    PGUSER: "postgres",
    PGDATABASE: "postgres",
    PGPASSWORD: PASSWORD,
  };
  must([`${PG_BIN}/pgbench`, "-i", "-q", "-s", String(scale), "-p", String(pgPort)], env);
  console.log(
    `pgbench -c ${clients} -j 2 -T ${seconds}, scale ${scale}, ${rounds} rounds; ` +
      `PostgreSQL 15 on port ${pgPort}, pgts on port ${pgtsPort}`,
  );

  const tps = (port: number, args: string[]): number => {
    const out = must([
      `${PG_BIN}/pgbench`,
      "-n",
      "-c",
      String(clients),
      "-j",
      "2",
      "-T",
      String(seconds),
      "-p",
      String(port),
      ...args,
    ], env);
    const failed = /number of failed transactions: (\d+)/.exec(out)?.[1];
    if (failed !== undefined && failed !== "0") throw new Error(`pgbench had ${failed} failures`);
    return Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? "NaN");
  };
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const summary: string[] = [];
  for (const [name, args] of [["select-only", ["-S"]], ["tpc-b", []]] as const) {
    const direct: number[] = [];
    const through: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const order = i % 2 === 0 ? ["direct", "pgts"] : ["pgts", "direct"];
      for (const side of order) {
        const t = tps(side === "direct" ? pgPort : pgtsPort, [...args]);
        (side === "direct" ? direct : through).push(t);
        console.log(
          `${name.padEnd(12)} round ${i + 1} ${side.padEnd(6)} ${t.toFixed(0).padStart(7)} tps`,
        );
      }
    }
    const d = median(direct);
    const p = median(through);
    summary.push(
      `${name.padEnd(12)} direct ${d.toFixed(0).padStart(7)} tps  pgts ${
        p.toFixed(0).padStart(7)
      } tps  ratio ${(p / d).toFixed(2)}`,
    );
  }
  console.log("\nmedians:");
  for (const line of summary) console.log(line);
}

function cleanUp(): void {
  for (const c of children) {
    try {
      if (c.pid !== undefined) process.kill(c === children[1] ? -c.pid : c.pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  if (pgPid !== 0) {
    try {
      process.kill(pgPid, "SIGQUIT");
    } catch {
      // gone
    }
  }
  spawnSync("sleep", ["1"]);
  rmSync(dir, { recursive: true, force: true });
}

try {
  await main();
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
} finally {
  cleanUp();
}
