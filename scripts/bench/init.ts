/**
 * Creating a cluster, side by side in one run: `pgts init` copying the
 * cluster image, `pgts init` running PGlite's initdb (PGTS_CLUSTER_IMAGE=off,
 * the path before images), PostgreSQL 15's `initdb` (run as an unprivileged
 * user when this runs as root; with -N, since pgts fsyncs nothing either),
 * and the cold start of a memory:// engine (process spawn until the first
 * `SELECT 1` over HTTP is answered; scripts/bench/http_bun_entry.ts, the
 * fetch-handler example under Bun.serve) with and without the image. Run with
 *   ./node_modules/.bin/bun scripts/bench/init.ts [ROUNDS]
 * (default 3). Rounds alternate the variants; medians are printed, with
 * every run's figure, and the ratios between them.
 *
 * The image is the cache's (~/.cache/pgts, or $PGTS_CACHE_DIR); if there is
 * none yet the first `pgts init` makes it, which is timed and printed apart.
 */

import { spawn, spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { cachedImagePath, findClusterImage } from "../../src/engines/pglite/image.ts";

const ROOT = resolve(import.meta.dirname ?? ".", "../..");
const BUN = join(ROOT, "node_modules/.bin/bun");
const PG_BIN = "/usr/lib/postgresql/15/bin";
const ROUNDS = Number(process.argv[2] ?? 3);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const scratch = mkdtempSync(join(tmpdir(), "pgts-bench-init-"));
// Traversable, so that initdb's user reaches the directories made for it here.
chmodSync(scratch, 0o711);
const pwfile = join(scratch, "pw");
writeFileSync(pwfile, "bench password\n");
let seq = 0;
const freshDir = () => join(scratch, `d${++seq}`);

/** Runs a command to completion; its wall-clock time in ms. */
function timed(cmd: string[], env: Record<string, string> = {}): number {
  const t0 = performance.now();
  const r = spawnSync(cmd[0]!, cmd.slice(1), {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: "utf8",
  });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd.join(" ")} failed (${r.status}):\n${r.stderr}`);
  return ms;
}

/** The OS user initdb runs as: none unless root, else "postgres" (created if missing). */
function initdbUser(): string | null {
  if (process.getuid?.() !== 0) return null;
  const name = process.env["PG_OS_USER"] ?? "postgres";
  if (spawnSync("id", ["-u", name]).status !== 0) {
    const r = spawnSync("useradd", ["-r", "-M", "-s", "/usr/sbin/nologin", name]);
    if (r.status !== 0) throw new Error(`useradd ${name} failed`);
  }
  return name;
}

function uidOf(user: string): [number, number] {
  const out = (flag: string) =>
    Number(spawnSync("id", [flag, user], { encoding: "utf8" }).stdout.trim());
  return [out("-u"), out("-g")];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen({ host: "127.0.0.1", port: 0 }, () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a !== null ? a.port : 0));
    });
  });
}

/** Spawn of the memory:// HTTP entry until its first answered SELECT 1, in ms. */
async function coldStart(env: Record<string, string>): Promise<number> {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(BUN, ["scripts/bench/http_bun_entry.ts"], {
    cwd: ROOT,
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ["ignore", "ignore", "inherit"],
  });
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`http_bun_entry.ts exited ${child.exitCode}`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/sql`, {
          method: "POST",
          headers: { "Neon-Connection-String": "postgres://postgres@127.0.0.1/postgres" },
          body: JSON.stringify({ query: "SELECT 1", params: [] }),
        });
        await res.arrayBuffer();
        if (res.status === 200) return performance.now() - t0;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    child.kill("SIGKILL");
  }
}

const pgts = (args: string[]) => [BUN, join(ROOT, "mod.ts"), ...args];
const OFF = { PGTS_CLUSTER_IMAGE: "off" };

try {
  if (findClusterImage() === null) {
    const ms = timed(pgts(["init", "-D", freshDir()]));
    console.log(`first pgts init (makes ${cachedImagePath()}): ${(ms / 1000).toFixed(2)} s`);
  }
  const user = initdbUser();
  const variants: [string, () => number | Promise<number>][] = [
    ["pgts init (image)", () => timed(pgts(["init", "-D", freshDir()]))],
    [
      "pgts init -U alice -A scram-sha-256 --pwfile (image)",
      () =>
        timed(
          pgts([
            "init",
            "-D",
            freshDir(),
            "-U",
            "alice",
            "-A",
            "scram-sha-256",
            "--pwfile",
            pwfile,
          ]),
        ),
    ],
    [
      "pgts init (PGlite's initdb, PGTS_CLUSTER_IMAGE=off)",
      () => timed(pgts(["init", "-D", freshDir()]), OFF),
    ],
    ["PostgreSQL 15 initdb -N", () => {
      const dir = freshDir();
      const cmd = [`${PG_BIN}/initdb`, "-N", "-A", "trust", "-U", "postgres", "-D", dir];
      if (user === null) return timed(cmd);
      const parent = mkdtempSync(join(scratch, "pg-"));
      chownSync(parent, ...uidOf(user));
      return timed(["runuser", "-u", user, "--", ...cmd.slice(0, -1), join(parent, "d")]);
    }],
    ["memory:// cold start (image)", () => coldStart({})],
    ["memory:// cold start (PGlite's initdb)", () => coldStart(OFF)],
  ];
  const runs = new Map<string, number[]>(variants.map(([name]) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the order so that no variant always runs first or last.
    for (let i = 0; i < variants.length; i++) {
      const [name, run] = variants[(i + round) % variants.length]!;
      runs.get(name)!.push(await run());
    }
  }
  const load = spawnSync("cat", ["/proc/loadavg"], { encoding: "utf8" }).stdout.trim();
  console.log(`${ROUNDS} rounds, load average at the end: ${load}`);
  const med = new Map([...runs].map(([name, xs]) => [name, median(xs)]));
  for (const [name, xs] of runs) {
    const all = xs.map((x) => (x / 1000).toFixed(2)).join(", ");
    console.log(`${name.padEnd(56)} ${(med.get(name)! / 1000).toFixed(2)} s  (${all})`);
  }
  const ratio = (a: string, b: string) => (med.get(a)! / med.get(b)!).toFixed(2);
  console.log(
    `pgts init: PGlite's initdb / image ${
      ratio("pgts init (PGlite's initdb, PGTS_CLUSTER_IMAGE=off)", "pgts init (image)")
    }×; image / PostgreSQL 15 initdb ${ratio("pgts init (image)", "PostgreSQL 15 initdb -N")}×; ` +
      `with -U and password / PostgreSQL 15 initdb ${
        ratio("pgts init -U alice -A scram-sha-256 --pwfile (image)", "PostgreSQL 15 initdb -N")
      }×`,
  );
  console.log(
    `memory:// cold start: PGlite's initdb / image ${
      ratio("memory:// cold start (PGlite's initdb)", "memory:// cold start (image)")
    }×`,
  );
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
