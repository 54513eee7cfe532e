/**
 * Committed transactions survive a SIGKILL of any pgts process: a client
 * runs autocommit INSERTs and notes each acknowledged id; the bench SIGKILLs
 * the client's backend, then the engine child, then the postmaster, each in
 * the middle of the stream; after the crash cycle (or a restart, for the
 * postmaster) every acknowledged row must be there. This is the durability
 * of the `fsync=off` servers compare.ts sets beside pglite-socket (PGlite
 * writes every change to its files before it answers); the default, fsync
 * on, also survives a power cut (tests/e2e/backup).
 *
 *   ./node_modules/.bin/bun scripts/bench/durability.ts [--adapter bun[:name=value...]]
 *
 * Under `--adapter inproc` the backend and the engine are tasks inside the
 * postmaster's process, so the one process there is to kill is the
 * postmaster.
 *
 * Prints one Markdown table; exits 1 when an acknowledged row is missing.
 */

import process from "node:process";
import { parseArgs } from "node:util";
import pg from "pg";
import { parsePgtsSpec, processTree, startPgts } from "./lib/servers.ts";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const { values: opts } = parseArgs({
  args: process.argv.slice(2),
  options: { adapter: { type: "string", default: "bun" } },
});
const spec = opts.adapter!;
const inproc = parsePgtsSpec(spec).adapter === "inproc";
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function rssKiB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

async function connect(port: number): Promise<pg.Client> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const c = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres" });
    try {
      await c.connect();
      await c.query("select 1");
      return c;
    } catch (e) {
      await c.end().catch(() => {});
      if (Date.now() > deadline) throw e;
      await sleep(100);
    }
  }
}

type Victim = "backend" | "engine child" | "postmaster";
const rows: string[] = [];
let lost = 0;
const scratch = mkdtempSync(join(tmpdir(), "pgts-durability-"));
const dataDir = join(scratch, "data");
let server = await startPgts(spec, { dataDir });
try {
  {
    const c = await connect(server.port);
    await c.query("create table durability(id int primary key, pad text)");
    await c.end();
  }
  let next = 1;
  const victims: Victim[] = inproc ? ["postmaster"] : ["backend", "engine child", "postmaster"];
  for (const victim of victims) {
    const writer = await connect(server.port);
    writer.on("error", () => {});
    // The pid of BackendKeyData, the backend process (pg_backend_pid() is PGlite's own).
    const backendPid = (writer as unknown as { processID: number }).processID;
    if (!inproc && !processTree(server.pid).includes(backendPid)) {
      throw new Error(`backend pid ${backendPid} is not a child of the postmaster`);
    }
    const first = next;
    let acked = first - 1;
    const writing = (async () => {
      try {
        const until = Date.now() + 20_000; // the kill must end it long before
        while (Date.now() < until) {
          await writer.query("insert into durability values ($1, repeat('x', 200))", [next]);
          acked = next++;
        }
      } catch {
        // The kill ended the session.
      }
    })();
    await sleep(600);
    const pmPid = server.pid;
    const children = processTree(pmPid).filter((p) => p !== pmPid);
    const pid = victim === "backend" ? backendPid : victim === "postmaster"
      ? pmPid
      // The engine child holds PGlite's WASM heap: the largest child by far.
      : children.filter((p) => p !== backendPid).sort((a, b) => rssKiB(b) - rssKiB(a))[0]!;
    process.kill(pid, "SIGKILL");
    await writing;
    await writer.end().catch(() => {});
    next = acked + 2; // the insert in flight may or may not have committed
    if (victim === "postmaster") {
      // Its children notice the postmaster's death and leave; then a new start recovers.
      const deadline = Date.now() + 30_000;
      while (children.some((p) => rssKiB(p) > 0) && Date.now() < deadline) await sleep(100);
      await server.stop().catch(() => {});
      server = await startPgts(spec, { dataDir });
    }
    const c = await connect(server.port);
    const { rows: r } = await c.query(
      "select count(*)::int as n from durability where id between $1 and $2",
      [first, acked],
    );
    await c.end();
    const present = r[0].n as number;
    const expected = acked - first + 1;
    lost += expected - present;
    rows.push(
      `| SIGKILL of the ${victim} | ${expected} | ${present} | ${expected - present} |`,
    );
  }
} finally {
  await server.stop();
  rmSync(scratch, { recursive: true, force: true });
}
console.log(
  [
    `| pgts ${spec}, process killed | acknowledged inserts | present after recovery | lost |`,
    "|---|---:|---:|---:|",
    ...rows,
  ].join("\n"),
);
process.exit(lost === 0 ? 0 : 1);
