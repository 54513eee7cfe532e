/**
 * A base backup of a ~1 GB cluster: `pgts basebackup` from the running
 * server against `cp -a` of the same directory stopped, side by side. Run
 * with
 *   ./node_modules/.bin/bun scripts/bench/basebackup.ts [--size-mb N] [--rounds N] [--keep DIR]
 *
 * Builds the cluster once (`pgts init`, then one table of 1 kB rows filled
 * by `insert … select generate_series` until the tables hold about N MB,
 * default 1024; the directory also has the WAL), then per round: `pgts basebackup -F plain
 * -X fetch` (fsynced, as pg_basebackup by default) and `-F tar` of the
 * running server, then the server stopped and `cp -a` of its directory
 * followed by `sync -f` (so both have the data on disk). Prints each time,
 * what each wrote (cp copies the WAL directory whole, up to max_wal_size;
 * a backup only the segments it needs) and at what rate, and the time
 * against `cp -a`'s. `--keep DIR` reuses (or leaves) the cluster in DIR.
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import pg from "pg";

const ROOT = resolve(new URL("../..", import.meta.url).pathname);
const BUN = join(ROOT, "node_modules/.bin/bun");
const MOD = join(ROOT, "mod.ts");

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    "size-mb": { type: "string", default: "1024" },
    rounds: { type: "string", default: "2" },
    keep: { type: "string" },
  },
});
const sizeMb = Number(values["size-mb"]);
const rounds = Number(values.rounds);
const work = mkdtempSync(join(tmpdir(), "backup-bench-"));
const dataDir = values.keep ?? join(work, "data");

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited with ${r.status}`);
}

function duMb(dir: string): number {
  const r = spawnSync("du", ["-sm", "--apparent-size", dir], { encoding: "utf8" });
  return Number(r.stdout.split("\t")[0]);
}

function pidLines(): string[] {
  try {
    return readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n");
  } catch {
    return [];
  }
}

async function start(): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(BUN, [MOD, "start", "-D", dataDir, "-p", "0"], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "inherit"],
  });
  const deadline = Date.now() + 120_000;
  for (;;) {
    const l = pidLines();
    if (l[0] === String(proc.pid) && l[7]?.trim() === "ready") return { proc, port: Number(l[3]) };
    if (Date.now() > deadline) throw new Error("server did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stop(proc: ChildProcess): Promise<void> {
  const exited = new Promise((r) => proc.once("exit", r));
  run(BUN, [MOD, "stop", "-D", dataDir, "-m", "fast"]);
  await exited;
}

function timed(f: () => void): number {
  const t = performance.now();
  f();
  return (performance.now() - t) / 1000;
}

if (!existsSync(join(dataDir, "postgresql.conf"))) run(BUN, [MOD, "init", "-D", dataDir]);
let server = await start();
{
  const c = new pg.Client({ host: "127.0.0.1", port: server.port, user: "postgres" });
  await c.connect();
  await c.query("CREATE TABLE IF NOT EXISTS filler (id bigint, pad text)");
  // About 50 MB a statement.
  while (duMb(join(dataDir, "pglite", "base")) < sizeMb) {
    await c.query(
      "INSERT INTO filler SELECT g, repeat(md5(g::text), 31) FROM generate_series(1, 50000) g",
    );
  }
  await c.query("CHECKPOINT");
  await c.end();
}
const sourceMb = duMb(dataDir);
console.log(
  `cluster: ${sourceMb} MB in ${dataDir}; load average ${
    loadavg().map((l) => l.toFixed(1)).join(" ")
  }`,
);

/** One line: time, what was written and at what rate, and the time against cp -a's. */
const report = (what: string, s: number, mb: number, cp: number | null) => {
  console.log(
    `${what.padEnd(34)} ${s.toFixed(1).padStart(6)} s ${String(mb).padStart(5)} MB ${
      (mb / s).toFixed(0).padStart(4)
    } MB/s${cp === null ? "" : `  ${(s / cp).toFixed(2)}× cp -a's time`}`,
  );
};
for (let round = 1; round <= rounds; round++) {
  const plainDir = join(work, `plain${round}`);
  const tarDir = join(work, `tar${round}`);
  const copyDir = join(work, `copy${round}`);
  const at = ["-h", "127.0.0.1", "-p", String(server.port)];
  const plain = timed(() => run(BUN, [MOD, "basebackup", "-D", plainDir, ...at]));
  const tar = timed(() => run(BUN, [MOD, "basebackup", "-D", tarDir, "-F", "tar", ...at]));
  await stop(server.proc);
  const cp = timed(() => {
    run("cp", ["-a", dataDir, copyDir]);
    run("sync", ["-f", copyDir]);
  });
  report(`round ${round}: cp -a + sync (stopped)`, cp, duMb(copyDir), null);
  report(`round ${round}: basebackup -F plain`, plain, duMb(plainDir), cp);
  report(`round ${round}: basebackup -F tar`, tar, duMb(tarDir), cp);
  for (const d of [plainDir, tarDir, copyDir]) rmSync(d, { recursive: true, force: true });
  server = await start();
}
await stop(server.proc);
console.log(`load average at the end ${loadavg().map((l) => l.toFixed(1)).join(" ")}`);
// The cluster goes with it unless --keep put it elsewhere.
rmSync(work, { recursive: true, force: true });
