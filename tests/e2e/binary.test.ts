/**
 * The single binary (`scripts/build` → dist/pgts), as a user runs it: copied
 * alone into an empty directory and run there, with an environment that has
 * no Bun, no Deno and no node_modules on PATH, it creates a cluster (PGlite's
 * initdb from the embedded initdb.wasm), serves psql, and stops.
 *
 * dist/pgts is rebuilt only when a file it is built from is newer than it.
 */

import { afterEach, expect, test } from "bun:test";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../..");
const BINARY = join(ROOT, "dist/pgts");
const PSQL = "/usr/lib/postgresql/15/bin/psql";
/** What dist/pgts is built from. */
const SOURCES = ["mod.ts", "src", "scripts/build", "package.json", "deno.json"];

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const name of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, name)));
  return newest;
}

function binaryIsFresh(): boolean {
  if (!existsSync(BINARY)) return false;
  const built = statSync(BINARY).mtimeMs;
  return SOURCES.every((s) => newestMtime(join(ROOT, s)) < built);
}

async function buildBinary(): Promise<void> {
  if (binaryIsFresh()) return;
  const p = Bun.spawn(["bash", join(ROOT, "scripts/build")], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  if (code !== 0) throw new Error(`scripts/build failed (${code}):\n${out}${err}`);
}

interface Run {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

test(
  "the compiled binary, alone in an empty directory, runs init, then start, psql select 1, the shipped extensions and stop under the default, the subprocess and the Worker adapter",
  async () => {
    await buildBinary();

    const dir = mkdtempSync(join(tmpdir(), "pgts-binary-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    copyFileSync(BINARY, join(dir, "pgts"));
    chmodSync(join(dir, "pgts"), 0o755);

    // Nothing of the repository: no node_modules/.bin on PATH, HOME and cwd
    // in the scratch directory.
    const env = { PATH: "/usr/bin:/bin", HOME: dir };
    const pgts = async (args: string[]): Promise<Run> => {
      const p = Bun.spawn(["./pgts", ...args], {
        cwd: dir,
        env,
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
      });
      const [out, err, code] = await Promise.all([
        new Response(p.stdout).text(),
        new Response(p.stderr).text(),
        p.exited,
      ]);
      return { code, out, err };
    };

    const init = await pgts(["init", "-D", "d"]);
    expect(init.err + init.out).toContain("Success");
    expect(init.code).toBe(0);

    // The default adapter (children are the binary's own modules, the engine
    // a Worker of the binary's engine entry), subprocesses (children are the
    // binary itself, started again) and Web Workers (children are the
    // binary's Worker entry, src/bin/worker.ts).
    for (const adapter of [[], ["--adapter", "subprocess"], ["--adapter", "worker"]]) {
      const server = Bun.spawn(
        ["./pgts", "start", "-D", "d", "-p", "0", "-c", "unix_socket_directories=d", ...adapter],
        { cwd: dir, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
      );
      const serverLog = Promise.all([
        new Response(server.stdout).text(),
        new Response(server.stderr).text(),
      ]).then(([out, err]) => out + err);
      cleanups.push(() => {
        // Only if stop did not end it: SIGQUIT is an immediate shutdown, which
        // takes the children with it.
        if (server.exitCode === null && server.signalCode === null) server.kill("SIGQUIT");
      });

      const pidFile = join(dir, "d", "postmaster.pid");
      const deadline = Date.now() + 30_000;
      let lines: string[] = [];
      while (lines[7]?.trim() !== "ready") {
        if (server.exitCode !== null) {
          throw new Error(`pgts start exited with ${server.exitCode}:\n${await serverLog}`);
        }
        if (Date.now() > deadline) {
          throw new Error(
            `pgts start not ready in 30 s:\n${lines.join("\n")}`,
          );
        }
        await Bun.sleep(25);
        lines = existsSync(pidFile) ? readFileSync(pidFile, "utf8").split("\n") : [];
      }
      const port = lines[3]!.trim();

      const psql = Bun.spawn(
        [PSQL, "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-Atc", "select 1"],
        { cwd: dir, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
      );
      const [out, err] = await Promise.all([
        new Response(psql.stdout).text(),
        new Response(psql.stderr).text(),
      ]);
      expect(err).toBe("");
      expect(out.trim()).toBe("1");
      expect(await psql.exited).toBe(0);

      // The extensions the packages ship, embedded in the binary (the first
      // loop creates them; the later ones find them created).
      const ext = Bun.spawn(
        [
          PSQL,
          ...["-h", "127.0.0.1", "-p", port, "-U", "postgres", "-At"],
          ...["-c", "create extension if not exists pg_trgm"],
          ...["-c", "create extension if not exists vector"],
          ...["-c", "select similarity('word', 'two words'), '[1,2]'::vector <-> '[4,6]'"],
        ],
        { cwd: dir, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
      );
      const [extOut, extErr] = await Promise.all([
        new Response(ext.stdout).text(),
        new Response(ext.stderr).text(),
      ]);
      expect(extErr.replace(/^NOTICE: .*already exists, skipping\n/gm, "")).toBe("");
      expect(extOut.trim().split("\n").at(-1)).toBe("0.36363637|5");
      expect(await ext.exited).toBe(0);

      const stop = await pgts(["stop", "-D", "d"]);
      expect(stop.out).toContain("server stopped");
      expect(stop.code).toBe(0);
      expect(await server.exited).toBe(0);
      expect(existsSync(pidFile)).toBe(false);
    }
  },
  120_000,
);
