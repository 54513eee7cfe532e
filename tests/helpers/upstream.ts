/**
 * A real PostgreSQL 15 for the upstream-engine tests, and pgts in front of
 * it. `startUpstream()` runs initdb into a temp dir and starts `postgres`
 * as an unprivileged OS user (PostgreSQL refuses root): the user named by
 * PG_OS_USER, else "postgres", created with useradd when missing. The port
 * is one the kernel picked for a socket bound to 0 and closed (postgres
 * cannot listen on port 0); the Unix socket is in the temp dir.
 * `PgtsFront.start(url)` runs `pgts start --engine URL` on port 0, on a copy
 * of one `pgts init` per file, under the suite's runtime (Bun, or Deno with
 * PGTS_TEST_RUNTIME=deno; see pgts.ts's TEST_RUNTIME). Call `useUpstreamServers()` once per file: every server is killed
 * and every directory removed after the file, pass or fail.
 */

import { afterAll, expect, setDefaultTimeout } from "bun:test";
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import pg from "pg";
import { pgtsCommand, TEST_RUNTIME } from "./pgts.ts";

export const ROOT = resolve(import.meta.dir, "../..");
export const BUN = join(ROOT, "node_modules/.bin/bun");
export const PG_BIN = "/usr/lib/postgresql/15/bin";
const MOD = join(ROOT, "mod.ts");

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface RunResult {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** Runs a program; stdout/stderr collected, killed after `timeoutMs`. */
export async function run(
  cmd: readonly string[],
  options: { env?: Record<string, string>; stdin?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  const p = Bun.spawn([...cmd], {
    stdin: options.stdin !== undefined ? new TextEncoder().encode(options.stdin) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...options.env },
  });
  const timer = setTimeout(() => p.kill("SIGKILL"), options.timeoutMs ?? 60_000);
  try {
    const [out, err, code] = await Promise.all([
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
      p.exited,
    ]);
    return { code, out, err };
  } finally {
    clearTimeout(timer);
  }
}

export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  options: { timeoutMs?: number; detail?: () => string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${what}${options.detail ? `\n${options.detail()}` : ""}`,
      );
    }
    await sleep(25);
  }
}

/** A port nobody listens on right now (postgres cannot bind port 0 and report it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen({ host: "127.0.0.1", port: 0 }, () => {
      const a = s.address();
      const port = a !== null && typeof a === "object" ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function killQuietly(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** The OS user that runs postgres when we are root (created if missing); null when not root. */
function osUser(): string | null {
  if (process.getuid?.() !== 0) return null;
  const name = process.env["PG_OS_USER"] ?? "postgres";
  const exists = Bun.spawnSync(["id", "-u", name]).exitCode === 0;
  if (!exists) {
    const r = Bun.spawnSync(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", name]);
    if (r.exitCode !== 0) throw new Error(`useradd ${name} failed: ${r.stderr.toString()}`);
  }
  return name;
}

function asUser(user: string | null, cmd: string[]): string[] {
  return user === null ? cmd : ["runuser", "-u", user, "--", ...cmd];
}

export type AuthMethod = "scram-sha-256" | "md5" | "password" | "trust";

/** The superuser initdb creates, and its password. */
export const UPSTREAM_USER = "postgres";
export const UPSTREAM_PASSWORD = "upstream secret";

const servers = new Set<{ cleanup(): Promise<void> }>();

export class UpstreamPostgres {
  readonly root: string;
  readonly dataDir: string;
  readonly socketDir: string;
  readonly port: number;
  readonly user: string | null;
  #proc: ReturnType<typeof Bun.spawn> | null = null;
  #log = "";
  /** ssl = on with these files (in the root, owned by the server's user). */
  #ssl: { cert: string; key: string } | null = null;

  private constructor(root: string, port: number, user: string | null) {
    this.root = root;
    this.dataDir = join(root, "data");
    this.socketDir = root;
    this.port = port;
    this.user = user;
  }

  /**
   * initdb (TCP clients authenticate with `auth`; local socket is trust) and
   * start; with `ssl`, a certificate and key (PEM files) to run with ssl = on.
   */
  static async start(
    options: { auth?: AuthMethod; ssl?: { cert: string; key: string } } = {},
  ): Promise<UpstreamPostgres> {
    const user = osUser();
    const root = mkdtempSync(join(tmpdir(), "pgts-upstream-"));
    chmodSync(root, 0o755);
    const pg = new UpstreamPostgres(root, await freePort(), user);
    servers.add(pg);
    const pwfile = join(root, "pwfile");
    writeFileSync(pwfile, `${UPSTREAM_PASSWORD}\n`);
    if (user !== null) {
      const uid = Number(Bun.spawnSync(["id", "-u", user]).stdout.toString().trim());
      const gid = Number(Bun.spawnSync(["id", "-g", user]).stdout.toString().trim());
      chownSync(root, uid, gid);
      chownSync(pwfile, uid, gid);
    }
    if (options.ssl !== undefined) {
      const cert = join(root, "server.crt");
      const key = join(root, "server.key");
      writeFileSync(cert, readFileSync(options.ssl.cert));
      writeFileSync(key, readFileSync(options.ssl.key), { mode: 0o600 });
      if (user !== null) {
        const uid = Number(Bun.spawnSync(["id", "-u", user]).stdout.toString().trim());
        const gid = Number(Bun.spawnSync(["id", "-g", user]).stdout.toString().trim());
        chownSync(cert, uid, gid);
        chownSync(key, uid, gid);
      }
      pg.#ssl = { cert, key };
    }
    const auth = options.auth ?? "scram-sha-256";
    const init = await run(asUser(user, [
      `${PG_BIN}/initdb`,
      "-D",
      pg.dataDir,
      "-U",
      UPSTREAM_USER,
      `--pwfile=${pwfile}`,
      "--auth-local=trust",
      `--auth-host=${auth}`,
      "-E",
      "UTF8",
      "--no-locale",
      "--no-sync",
    ]));
    if (init.code !== 0) throw new Error(`initdb failed:\n${init.out}\n${init.err}`);
    if (auth === "md5") {
      // The stored secret must be an md5 hash for md5 to be offered.
      writeFileSync(join(pg.dataDir, "postgresql.auto.conf"), "password_encryption = md5\n");
    }
    await pg.startServer();
    if (auth === "md5") {
      await pg.psql(`ALTER ROLE ${UPSTREAM_USER} PASSWORD '${UPSTREAM_PASSWORD}'`);
    }
    return pg;
  }

  /**
   * A streaming standby of `primary`: `pg_basebackup -R` (which writes
   * standby.signal and primary_conninfo) over the primary's Unix socket,
   * then started on a port of its own.
   */
  static async standbyOf(primary: UpstreamPostgres): Promise<UpstreamPostgres> {
    const user = primary.user;
    const root = mkdtempSync(join(tmpdir(), "pgts-standby-"));
    chmodSync(root, 0o755);
    const pg = new UpstreamPostgres(root, await freePort(), user);
    servers.add(pg);
    if (user !== null) {
      const uid = Number(Bun.spawnSync(["id", "-u", user]).stdout.toString().trim());
      const gid = Number(Bun.spawnSync(["id", "-g", user]).stdout.toString().trim());
      chownSync(root, uid, gid);
    }
    const backup = await run(asUser(user, [
      `${PG_BIN}/pg_basebackup`,
      "-h",
      primary.socketDir,
      "-p",
      String(primary.port),
      "-U",
      UPSTREAM_USER,
      "-D",
      pg.dataDir,
      "-R",
      "-X",
      "stream",
      "--no-sync",
    ]));
    if (backup.code !== 0) throw new Error(`pg_basebackup failed:\n${backup.out}\n${backup.err}`);
    await pg.startServer();
    return pg;
  }

  /** pg_ctl promote: the standby becomes a primary (waits until it is). */
  async promote(): Promise<void> {
    const r = await run(
      asUser(this.user, [`${PG_BIN}/pg_ctl`, "promote", "-w", "-D", this.dataDir]),
    );
    if (r.code !== 0) throw new Error(`pg_ctl promote failed:\n${r.out}\n${r.err}`);
  }

  /** (Re)starts postgres on the same port and directory; waits until it answers. */
  async startServer(): Promise<void> {
    this.#log = "";
    const proc = Bun.spawn(
      asUser(this.user, [
        `${PG_BIN}/postgres`,
        "-D",
        this.dataDir,
        "-p",
        String(this.port),
        "-k",
        this.socketDir,
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
        "-c",
        "max_connections=50",
        ...(this.#ssl === null ? [] : [
          "-c",
          "ssl=on",
          "-c",
          `ssl_cert_file=${this.#ssl.cert}`,
          "-c",
          `ssl_key_file=${this.#ssl.key}`,
        ]),
      ]),
      { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    this.#proc = proc;
    for (const stream of [proc.stdout, proc.stderr] as ReadableStream<Uint8Array>[]) {
      void (async () => {
        const decoder = new TextDecoder();
        try {
          for await (const chunk of stream) this.#log += decoder.decode(chunk, { stream: true });
        } catch {
          // closed
        }
      })();
    }
    await waitFor("the upstream postgres to accept connections", async () => {
      if (proc.exitCode !== null) throw new Error(`postgres exited:\n${this.#log}`);
      const r = await run([
        `${PG_BIN}/pg_isready`,
        "-q",
        "-h",
        this.socketDir,
        "-p",
        String(this.port),
      ]);
      return r.code === 0;
    }, { timeoutMs: 30_000, detail: () => this.#log });
  }

  /** The postmaster's pid, from postmaster.pid. */
  get pid(): number {
    try {
      return Number(readFileSync(join(this.dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    } catch {
      return 0;
    }
  }

  get log(): string {
    return this.#log;
  }

  /** pgts's engine URL: TCP, with the password; or the Unix socket (trust). */
  url(options: { via?: "tcp" | "unix" } = {}): string {
    const password = encodeURIComponent(UPSTREAM_PASSWORD);
    return options.via === "unix"
      ? `postgres://${UPSTREAM_USER}:${password}@/postgres?host=${this.socketDir}&port=${this.port}`
      : `postgres://${UPSTREAM_USER}:${password}@127.0.0.1:${this.port}/postgres`;
  }

  /** Stops postgres: fast (SIGINT, sessions get 57P01) or immediate (SIGQUIT). */
  async stop(mode: "fast" | "immediate" = "fast"): Promise<void> {
    const pid = this.pid;
    if (pid !== 0) killQuietly(pid, mode === "fast" ? "SIGINT" : "SIGQUIT");
    await waitFor("the upstream postgres to stop", () => pid === 0 || !alive(pid), {
      timeoutMs: 30_000,
    });
    await this.#proc?.exited;
  }

  /** psql straight to the upstream over its Unix socket (trust). */
  psql(sql: string): Promise<RunResult> {
    return run([
      `${PG_BIN}/psql`,
      "-X",
      "-q",
      "-A",
      "-t",
      "-v",
      "ON_ERROR_STOP=1",
      "-h",
      this.socketDir,
      "-p",
      String(this.port),
      "-U",
      UPSTREAM_USER,
      "-d",
      "postgres",
      "-c",
      sql,
    ]);
  }

  async cleanup(): Promise<void> {
    servers.delete(this);
    const pid = this.pid;
    if (pid !== 0 && alive(pid)) {
      killQuietly(pid, "SIGQUIT");
      await waitFor("postgres to exit", () => !alive(pid), { timeoutMs: 10_000 }).catch(() => {
        killQuietly(pid, "SIGKILL");
      });
    }
    this.#proc?.kill("SIGKILL");
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** Direct children of `pid`. */
function childPids(pid: number): number[] {
  const pids: number[] = [];
  try {
    for (const tid of Bun.spawnSync(["ls", `/proc/${pid}/task`]).stdout.toString().split(/\s+/)) {
      if (tid === "") continue;
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
      if (text !== "") pids.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // gone
  }
  return pids;
}

function processTree(pid: number): number[] {
  return [...childPids(pid).flatMap(processTree), pid];
}

let template: Promise<string> | null = null;
let templateRoot: string | null = null;

/** One `pgts init` per test file; every front starts on a copy of it. */
function initTemplate(): Promise<string> {
  template ??= (async () => {
    const root = mkdtempSync(join(tmpdir(), "pgts-front-template-"));
    templateRoot = root;
    const dir = join(root, "d");
    const init = await run([BUN, MOD, "init", "-D", dir]);
    if (init.code !== 0) throw new Error(`pgts init failed:\n${init.out}\n${init.err}`);
    return dir;
  })();
  return template;
}

/** pgts in front of an upstream, started with `pgts start --engine URL`. */
export class PgtsFront {
  readonly root: string;
  readonly dataDir: string;
  port = 0;
  #proc: ReturnType<typeof Bun.spawn> | null = null;
  #log = "";

  private constructor(root: string) {
    this.root = root;
    this.dataDir = join(root, "d");
  }

  static async start(
    url: string,
    options: { settings?: Record<string, string>; hba?: string; adapter?: string } = {},
  ): Promise<PgtsFront> {
    const front = new PgtsFront(mkdtempSync(join(tmpdir(), "pgts-front-")));
    servers.add(front);
    const copy = Bun.spawnSync(["cp", "-a", await initTemplate(), front.dataDir]);
    if (copy.exitCode !== 0) throw new Error(`copying the pgts template failed`);
    if (options.hba !== undefined) writeFileSync(join(front.dataDir, "pg_hba.conf"), options.hba);
    const args = ["start", "-D", front.dataDir, "-p", "0", "--engine", url];
    args.push("-c", `unix_socket_directories=${front.dataDir}`);
    if (options.adapter !== undefined) args.push("--adapter", options.adapter);
    for (const [k, v] of Object.entries(options.settings ?? {})) args.push("-c", `${k}=${v}`);
    const proc = Bun.spawn(pgtsCommand(TEST_RUNTIME, args), {
      cwd: ROOT,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, NO_COLOR: "1" },
    });
    front.#proc = proc;
    for (const stream of [proc.stdout, proc.stderr] as ReadableStream<Uint8Array>[]) {
      void (async () => {
        const decoder = new TextDecoder();
        try {
          for await (const chunk of stream) front.#log += decoder.decode(chunk, { stream: true });
        } catch {
          // closed
        }
      })();
    }
    const lines = await waitFor("pgts to be ready", () => {
      if (proc.exitCode !== null) throw new Error(`pgts start exited:\n${front.#log}`);
      try {
        const l = readFileSync(join(front.dataDir, "postmaster.pid"), "utf8").split("\n");
        return l[0] === String(proc.pid) && l[7]?.trim() === "ready" ? l : undefined;
      } catch {
        return undefined;
      }
    }, { timeoutMs: 30_000, detail: () => front.#log });
    front.port = Number(lines[3]);
    return front;
  }

  get host(): string {
    return "127.0.0.1";
  }
  get socketDir(): string {
    return this.dataDir;
  }
  get pid(): number {
    return this.#proc?.pid ?? 0;
  }
  get log(): string {
    return this.#log;
  }

  /** Environment for libpq programs: the Unix socket, user postgres, database postgres. */
  env(): Record<string, string> {
    return {
      PGHOST: this.dataDir,
      PGPORT: String(this.port),
      PGUSER: "postgres",
      PGDATABASE: "postgres",
      PGCONNECT_TIMEOUT: "10",
      PGOPTIONS: "",
    };
  }

  /** A connected node-postgres client as postgres over TCP; errors after connect are the test's to see in queries. */
  async client(options: { connectionTimeoutMillis?: number } = {}): Promise<pg.Client> {
    const c = new pg.Client({
      host: this.host,
      port: this.port,
      user: "postgres",
      database: "postgres",
      ...options,
    });
    c.on("error", () => {});
    await c.connect();
    return c;
  }

  /** Runs pgbench against this server; it must end with status 0, 0 failed and some transactions. */
  async pgbench(args: string[]): Promise<RunResult> {
    const r = await run([`${PG_BIN}/pgbench`, ...args], { env: this.env() });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/number of failed transactions: 0 \(0\.000%\)/);
    const tx = Number(/number of transactions actually processed: (\d+)/.exec(r.out)?.[1]);
    expect(tx).toBeGreaterThan(0);
    return r;
  }

  async cleanup(): Promise<void> {
    servers.delete(this);
    const pid = this.pid;
    if (pid !== 0 && this.#proc?.exitCode === null) {
      for (const p of processTree(pid)) killQuietly(p, "SIGKILL");
      await Promise.race([this.#proc?.exited, sleep(5_000)]);
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** Registers the cleanup of every server started in this file; call once per file. */
export function useUpstreamServers(options: { timeoutMs?: number } = {}): void {
  setDefaultTimeout(options.timeoutMs ?? 60_000);
  afterAll(async () => {
    await Promise.all([...servers].map((s) => s.cleanup()));
    // bun test loads this module once for all files: the next file makes its own.
    if (templateRoot !== null) rmSync(templateRoot, { recursive: true, force: true });
    template = null;
    templateRoot = null;
  });
}
