/**
 * `pgts serve-http -D DIR --port 0`: serves a data directory made by
 * `pgts init` over HTTP, holds postmaster.pid while it runs, keeps what was
 * written across a restart, and stops on SIGINT (fast) with exit 0.
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { neon, neonConfig } from "@neondatabase/serverless";
import { pgtsCommand, TEST_RUNTIME } from "../helpers/pgts.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const bun = `${root}node_modules/.bin/bun`;
let dir: string;
let live: ChildProcess | null = null;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "pgts-serve-http-"));
  const init = spawnSync(bun, ["mod.ts", "init", "-D", join(dir, "data")], {
    cwd: root,
    encoding: "utf8",
  });
  if (init.status !== 0) throw new Error(`pgts init failed: ${init.stderr}`);
}, 120_000);

afterAll(() => {
  live?.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** Starts serve-http; resolves with its HTTP port once it says where it serves. */
function serveHttp(): Promise<{ child: ChildProcess; port: number; log: () => string }> {
  const [cmd, ...args] = pgtsCommand(TEST_RUNTIME, [
    "serve-http",
    "-D",
    join(dir, "data"),
    "--port",
    "0",
    "--admin-token",
    "t",
  ]);
  const child = spawn(cmd!, args, { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
  live = child;
  let log = "";
  return new Promise((resolve, reject) => {
    child.stderr!.on("data", (d) => {
      log += d;
      const m = /serving SQL over HTTP on http:\/\/127\.0\.0\.1:(\d+)\/sql/.exec(log);
      if (m !== null) resolve({ child, port: Number(m[1]), log: () => log });
    });
    child.on("exit", (code) => reject(new Error(`serve-http exited ${code}:\n${log}`)));
  });
}

const exited = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));

test("serve-http serves a data directory, keeps its data, and stops on SIGINT", async () => {
  let { child, port } = await serveHttp();
  expect(existsSync(join(dir, "data", "postmaster.pid"))).toBe(true);
  neonConfig.fetchEndpoint = `http://127.0.0.1:${port}/sql`;
  let sql = neon("postgres://postgres@127.0.0.1/postgres");
  await sql`CREATE TABLE kept (v text)`;
  await sql`INSERT INTO kept VALUES (${"over http"})`;
  // Any database of the cluster, by the connection string's name.
  await sql`CREATE DATABASE tenant_one`;
  const tenant = neon("postgres://postgres@127.0.0.1/tenant_one");
  await tenant`CREATE TABLE kept (v text)`;
  await tenant`INSERT INTO kept VALUES (${"tenant's"})`;
  expect(await tenant`SELECT current_database() AS db`).toEqual([{ db: "tenant_one" }]);
  const status = await fetch(`http://127.0.0.1:${port}/admin/status`, {
    headers: { Authorization: "Bearer t" },
  });
  expect((await status.json()).pmState).toBe("PM_RUN");
  const done = exited(child);
  child.kill("SIGINT");
  expect(await done).toBe(0);
  expect(existsSync(join(dir, "data", "postmaster.pid"))).toBe(false);

  ({ child, port } = await serveHttp());
  neonConfig.fetchEndpoint = `http://127.0.0.1:${port}/sql`;
  sql = neon("postgres://postgres@127.0.0.1/postgres");
  expect(await sql`SELECT v FROM kept`).toEqual([{ v: "over http" }]);
  expect(await neon("postgres://postgres@127.0.0.1/tenant_one")`SELECT v FROM kept`).toEqual([{
    v: "tenant's",
  }]);
  const again = exited(child);
  child.kill("SIGTERM");
  expect(await again).toBe(0);
  live = null;
}, 150_000);
