/**
 * Huge COPY, side by side in one run: `COPY (…) TO STDOUT` of TO_MB
 * megabytes and `COPY t FROM STDIN` of FROM_MB megabytes, through psql, on
 * PostgreSQL 15 and on pgts servers (default adapter and `--adapter
 * inproc` unless named). For each: wall-clock time and the server's peak
 * RSS above its idle RSS (the whole process tree, sampled every 100 ms from
 * /proc), and pgts's ratios to PostgreSQL's. The rows that COPY FROM loaded
 * are counted, so a COPY that loses data does not pass as fast.
 * Run with
 *   ./node_modules/.bin/bun scripts/bench/copy.ts [TO_MB] [FROM_MB] [pgts spec...]
 * (default 200 MB and 100 MB; the figures are 1024 and 500; a spec
 * as in compare.ts: `subprocess`, `inproc`, `inproc:engine_placement=inline`).
 */

import { spawn, spawnSync } from "node:child_process";
import { createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { PG_BIN, type Server, startPgts, startPostgres, treeMemory } from "./lib/servers.ts";

const TO_MB = Number(process.argv[2] ?? 200);
const FROM_MB = Number(process.argv[3] ?? 100);
const SPECS = process.argv.length > 4 ? process.argv.slice(4) : ["subprocess", "inproc"];
/** Bytes of one row of either COPY: a 7-digit number, a tab, 92 letters, a newline. */
const ROW = 101;

function psqlArgs(server: Server): string[] {
  return ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", server.host, "-p", String(server.port)]
    .concat(["-U", "postgres", "-d", "postgres"]);
}

function psql(server: Server, sql: string): string {
  const r = spawnSync(join(PG_BIN, "psql"), [...psqlArgs(server), "-At", "-c", sql], {
    encoding: "utf8",
    env: { ...process.env, PGSSLMODE: "disable" },
  });
  if (r.status !== 0) throw new Error(`${server.label}: ${sql}: ${r.stderr}`);
  return r.stdout.trim();
}

/**
 * Runs psql with `sql` while sampling the server's memory; ms, peak RSS
 * (KiB), and for "count" the bytes psql wrote (counted by `wc -c`, which
 * reads as fast as psql writes: a slow reader would hold the server back).
 */
function measured(
  server: Server,
  sql: string,
  stdout: "ignore" | "count",
): Promise<{ ms: number; peakKiB: number; bytes: number; err: string }> {
  return new Promise((resolve) => {
    let peakKiB = treeMemory(server.pid).rssKiB;
    const t0 = performance.now();
    const args = [...psqlArgs(server), "-c", sql];
    const proc = stdout === "count"
      ? spawn("bash", [
        "-c",
        `set -o pipefail; "$0" "$@" | wc -c`,
        join(PG_BIN, "psql"),
        ...args,
      ], { env: { ...process.env, PGSSLMODE: "disable" }, stdio: ["ignore", "pipe", "pipe"] })
      : spawn(join(PG_BIN, "psql"), args, {
        env: { ...process.env, PGSSLMODE: "disable" },
        stdio: ["ignore", "ignore", "pipe"],
      });
    let out = "";
    proc.stdout?.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
    let err = "";
    proc.stderr!.on("data", (d: Uint8Array) => (err += new TextDecoder().decode(d)));
    const timer = setInterval(() => {
      peakKiB = Math.max(peakKiB, treeMemory(server.pid).rssKiB);
    }, 100);
    proc.on("exit", (code) => {
      const ms = performance.now() - t0;
      clearInterval(timer);
      if (code !== 0) err ||= `psql exited with ${code}`;
      resolve({ ms, peakKiB, bytes: Number(out.trim() || 0), err });
    });
  });
}

/** The COPY FROM input file: FROM_MB megabytes of ROW-byte rows. */
async function makeInput(dir: string): Promise<{ path: string; rows: number }> {
  const rows = Math.floor((FROM_MB * 1024 * 1024) / ROW);
  const path = join(dir, "input.tsv");
  const out = createWriteStream(path);
  const pad = "abcdefghijklmnopqrstuvwxyz".repeat(4).slice(0, ROW - 9);
  const batch: string[] = [];
  for (let i = 1; i <= rows; i++) {
    batch.push(`${String(i).padStart(7, "0")}\t${pad}\n`);
    if (batch.length === 10_000 || i === rows) {
      if (!out.write(batch.join(""))) await new Promise<void>((r) => out.once("drain", () => r()));
      batch.length = 0;
    }
  }
  await new Promise<void>((r) => out.end(r));
  return { path, rows };
}

interface Figures {
  label: string;
  idleMiB: number;
  to: { s: number; peakMiB: number; mb: number; err: string };
  from: { s: number; peakMiB: number; rows: number; err: string };
}

async function run(server: Server, input: { path: string; rows: number }): Promise<Figures> {
  psql(server, "drop table if exists copy_bench; create table copy_bench (id int, pad text)");
  const idleKiB = treeMemory(server.pid).rssKiB;
  const toRows = Math.floor((TO_MB * 1024 * 1024) / ROW);
  const to = await measured(
    server,
    `copy (select lpad(i::text, 7, '0'), repeat('x', ${
      ROW - 9
    }) from generate_series(1, ${toRows}) i) to stdout`,
    "count",
  );
  const from = await measured(server, `\\copy copy_bench from '${input.path}'`, "ignore");
  let rows = -1;
  try {
    rows = Number(psql(server, "select count(*) from copy_bench"));
  } catch (e) {
    from.err ||= String(e);
  }
  const mib = (k: number) => (k - idleKiB) / 1024;
  return {
    label: server.label,
    idleMiB: idleKiB / 1024,
    to: { s: to.ms / 1000, peakMiB: mib(to.peakKiB), mb: to.bytes / 1048576, err: to.err },
    from: { s: from.ms / 1000, peakMiB: mib(from.peakKiB), rows, err: from.err },
  };
}

const scratch = mkdtempSync("/tmp/copy-bench-");
const load0 = loadavg()[0]!.toFixed(1);
const results: Figures[] = [];
try {
  const input = await makeInput(scratch);
  for (const spec of ["postgres", ...SPECS]) {
    const server = spec === "postgres" ? await startPostgres() : await startPgts(spec);
    try {
      results.push(await run(server, input));
    } finally {
      await server.stop();
    }
  }
  const pg = results[0]!;
  console.log(
    `COPY TO STDOUT ${TO_MB} MB, COPY FROM STDIN ${FROM_MB} MB (${input.rows} rows) through psql; ` +
      `load average ${load0} → ${loadavg()[0]!.toFixed(1)}`,
  );
  console.log(
    "server | idle RSS MiB | TO s | TO peak MiB above idle | FROM s | FROM peak MiB above idle | rows | × PG time TO/FROM",
  );
  for (const r of results) {
    const ratio = r === pg
      ? "1 / 1"
      : `${(r.to.s / pg.to.s).toFixed(2)} / ${(r.from.s / pg.from.s).toFixed(2)}`;
    console.log(
      [
        r.label,
        r.idleMiB.toFixed(0),
        r.to.s.toFixed(1) +
        (Math.abs(r.to.mb - pg.to.mb) > 0.01 ? ` (${r.to.mb.toFixed(0)} MB!)` : ""),
        r.to.peakMiB.toFixed(0),
        r.from.s.toFixed(1),
        r.from.peakMiB.toFixed(0),
        String(r.from.rows),
        ratio,
      ].join(" | "),
    );
    if (r.to.err) console.log(`  COPY TO: ${r.to.err.trim()}`);
    if (r.from.err) console.log(`  COPY FROM: ${r.from.err.trim()}`);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
process.exit(0);
