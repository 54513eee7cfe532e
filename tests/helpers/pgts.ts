/**
 * Real pgts servers for end-to-end tests: `startPgts()` runs `pgts start` as
 * a subprocess (under Bun or Deno, with any adapter and `-c` settings) on a
 * fresh data directory, on port 0, with its Unix socket in the data
 * directory, and waits until postmaster.pid says "ready". Call
 * `usePgtsServers()` once at the top of a test file: every server (and every
 * client opened through it) is killed and its directory removed after each
 * test, whether the test passed or not.
 *
 * Fresh data directories are made by `pgts init`, a copy of the cluster
 * image (fast once the image exists; see freshDataDir).
 */

import { afterAll, afterEach, setDefaultTimeout } from "bun:test";
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pg from "pg";

export const ROOT = resolve(import.meta.dir, "../..");
export const BUN = join(ROOT, "node_modules/.bin/bun");
export const DENO = join(ROOT, "node_modules/.bin/deno");
export const PG_BIN = "/usr/lib/postgresql/15/bin";
const MOD = join(ROOT, "mod.ts");

export type Runtime = "bun" | "deno";

/**
 * The runtime `pgts start` runs under when a test does not choose one:
 * `PGTS_TEST_RUNTIME=deno` runs the end-to-end suites against the server
 * started as `deno run -A mod.ts start`; Bun otherwise. Tests that name a
 * runtime keep it.
 */
export const TEST_RUNTIME: Runtime = runtimeFromEnv();

function runtimeFromEnv(): Runtime {
  const value = process.env["PGTS_TEST_RUNTIME"] ?? "";
  if (value === "" || value === "bun") return "bun";
  if (value === "deno") return "deno";
  throw new RangeError(`PGTS_TEST_RUNTIME must be "bun" or "deno", not "${value}"`);
}

/** The command that runs `pgts args` under a runtime: `bun mod.ts …` or `deno run -A mod.ts …`. */
export function pgtsCommand(runtime: Runtime, args: readonly string[]): string[] {
  return runtime === "bun" ? [BUN, MOD, ...args] : [DENO, "run", "-A", MOD, ...args];
}

export type Adapter = "subprocess" | "bun" | "worker" | "inproc";
export type StopMode = "smart" | "fast" | "immediate";

/**
 * The adapters a file's cases run under in this pass: all of `adapters`
 * under Bun; in the Deno pass (scripts/test.sh) all but `subprocess`. A
 * subprocess backend under Deno is a forked Deno running the same adapter
 * code as the default server's; the files whose subject is that process
 * itself (crash.test.ts's SIGKILLed backend and engine child,
 * shutdown.test.ts's signals, the_subprocess_adapter_runs_a_process_per_backend)
 * keep their subprocess cases there, the rest leave them to the Bun pass
 * (they were ~150 s of a CI run's shards on the slow host).
 */
export function passAdapters<A extends Adapter | undefined>(adapters: readonly A[]): A[] {
  return TEST_RUNTIME === "deno" ? adapters.filter((a) => a !== "subprocess") : [...adapters];
}

/**
 * The adapters of a file whose cases test what the engine does (SQL, a session's own state, what
 * survives) rather than how backends run: the default server, and `--adapter subprocess` too when
 * PGTS_TEST_ADAPTERS=all. Under the subprocess adapter those cases reach the same engine code
 * through a backend process and the engine child's socket; what that adapter does itself
 * (processes killed from outside, the crash cycle and shutdowns, cancel, COPY, TLS, LISTEN and
 * memory in a backend process, one engine child per database) is tested by the files that always
 * run it. `npm test` (and so CI) runs these files under the default only: their subprocess cases
 * were ~180 s of a ~1,420 s suite, and CI has 15 minutes on 2 CPUs.
 */
export const ENGINE_TEST_ADAPTERS: ReadonlyArray<Adapter | undefined> =
  process.env.PGTS_TEST_ADAPTERS === "all" ? [undefined, "subprocess"] : [undefined];

/**
 * `-c` settings every test server gets unless the test gives its own:
 * shared_buffers = 16MB instead of the 32MB `pgts init` writes (128MB where
 * no file says). The engine touches all of its shared memory when it
 * starts (every database's engine), and a test's tables fit in 16MB; about
 * 0.15 s of CPU less per start than 32MB under Bun, 0.5 s less than 128MB
 * (README, "On a fresh machine").
 */
export const TEST_SETTINGS: Readonly<Record<string, string>> = { shared_buffers: "16MB" };

/**
 * The environment of every test server and `pgts` command under Bun
 * (start, and pgtsCli's init, dump, stop, …): JavaScriptCore without its
 * optimizing tier (OMG), unless PGTS_TEST_FULL_JIT=1. A test's engine runs
 * Postgres's start-up and a few statements, and OMG compiled the hottest of
 * PGlite's functions again in the background at every engine start: CPU of
 * `bun test FILE` with against without it (2026-12-06, one run each): the
 * databases test 52 against 41 s, the dump test 60 against 38, crash 33
 * against 30; statement timeouts (CPU-bound statements run until their
 * timeout) 38 against 40. What runs is the same code; only the tier that
 * runs it differs. Under Deno, V8's flags for the same (`--no-wasm-tier-up`)
 * made no start cheaper. The benchmarks and the compiled binary keep every
 * tier.
 */
export const TEST_SERVER_ENV: Readonly<Record<string, string>> =
  process.env.PGTS_TEST_FULL_JIT === "1" ? {} : { BUN_JSC_useOMGJIT: "false" };

export interface StartOptions {
  /** The runtime `pgts start` runs under; default TEST_RUNTIME (bun unless PGTS_TEST_RUNTIME says). */
  readonly runtime?: Runtime;
  /** `--adapter`; default: none (the server's default, inproc). */
  readonly adapter?: Adapter;
  /**
   * `-c name=value` settings, over TEST_SETTINGS; null passes no `-c` for
   * that name (postgresql.conf decides).
   */
  readonly settings?: Readonly<Record<string, string | number | boolean | null>>;
  /** How long to wait for "ready"; default 30 s. */
  readonly readyTimeoutMs?: number;
  /** More environment for the server's processes (LD_PRELOAD, for one). */
  readonly env?: Readonly<Record<string, string>>;
  /** A command the server runs under (`setpriv … --`, for one); default none. */
  readonly wrap?: readonly string[];
}

export interface RunResult {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

// ---- fresh data directories ---------------------------------------------------

/** Runs `pgts args` under a runtime and collects its output. */
export async function pgtsCli(args: string[], runtime: Runtime = "bun"): Promise<RunResult> {
  const p = Bun.spawn(pgtsCommand(runtime, args), {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
    env: { ...process.env, ...(runtime === "bun" ? TEST_SERVER_ENV : {}) },
  });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { code, out, err };
}

/**
 * A fresh data directory at `dir`: `pgts init`, which copies the cluster
 * image (src/engines/pglite/image.ts) in well under a second. The first
 * init on a machine makes the image, as long as PGlite's initdb takes.
 */
async function freshDataDir(dir: string): Promise<void> {
  const r = await pgtsCli(["init", "-D", dir]);
  if (r.code !== 0) throw new Error(`pgts init -D ${dir} failed (${r.code}):\n${r.err}`);
}

// ---- processes ---------------------------------------------------------------

/** Direct children of `pid` (from /proc/<pid>/task/<tid>/children). */
export function childPidsOf(pid: number): number[] {
  const pids: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
      if (text !== "") pids.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // gone
  }
  return pids;
}

/** The number of threads of process `pid` (a Worker is one); 0 when it is gone. */
export function threadsOf(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/task`).length;
  } catch {
    return 0;
  }
}

/**
 * The engine child among a subprocess server's children (`childPids()`):
 * not a pooled backend, and the one with PGlite's threads; 0 if none.
 */
export function engineChild(children: number[]): number {
  const candidates = children.filter((pid) => {
    try {
      return !readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("--pgts-pool");
    } catch {
      return false;
    }
  });
  return candidates.sort((a, b) => threadsOf(b) - threadsOf(a))[0] ?? 0;
}

/** The variable every process of one test server inherits, to find orphans at cleanup. */
const TAG_VAR = "PGTS_E2E_TAG";

/** Processes whose environment carries `TAG_VAR=tag`: a server and all its children. */
function taggedProcesses(tag: string): number[] {
  const needle = `${TAG_VAR}=${tag}\0`;
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`, "latin1").includes(needle)) pids.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

/** Whether a process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

function killQuietly(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` every 25 ms until it returns a value other than undefined/false. */
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

/** `p`, or a rejection "timed out: WHAT" if it has not settled within `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

// ---- the server ---------------------------------------------------------------

const live = new Set<PgtsServer>();

export class PgtsServer {
  /** The directory holding the data directory (removed at cleanup). */
  readonly root: string;
  readonly dataDir: string;
  readonly runtime: Runtime;
  readonly adapter: Adapter | undefined;
  #proc: ReturnType<typeof Bun.spawn> | null = null;
  #log = "";
  #port = 0;
  #exitCode: number | null = null;
  #exited: Promise<number> = Promise.resolve(-1);
  #clients = new Set<pg.Client>();
  /** Every postmaster pid this server had (one per start). */
  #pids: number[] = [];

  constructor(root: string, runtime: Runtime, adapter: Adapter | undefined) {
    this.root = root;
    this.dataDir = join(root, "d");
    this.runtime = runtime;
    this.adapter = adapter;
  }

  /** The postmaster's pid. */
  get pid(): number {
    return this.#proc?.pid ?? 0;
  }
  get port(): number {
    return this.#port;
  }
  get host(): string {
    return "127.0.0.1";
  }
  /** Where the Unix socket is (the data directory). */
  get socketDir(): string {
    return this.dataDir;
  }
  /** Everything the server (and its children) wrote to stdout and stderr so far. */
  get log(): string {
    return this.#log;
  }
  /** The exit code once the postmaster has exited, else null. */
  get exitCode(): number | null {
    return this.#exitCode;
  }
  /** Resolves with the postmaster's exit code (128 + n after a signal). */
  get exited(): Promise<number> {
    return this.#exited;
  }

  /** The lines of postmaster.pid, or null when there is none. */
  pidFile(): string[] | null {
    try {
      return readFileSync(join(this.dataDir, "postmaster.pid"), "utf8").split("\n");
    } catch {
      return null;
    }
  }

  /** Spawns `pgts start` and waits for "ready". */
  async start(options: StartOptions = {}): Promise<this> {
    const args = [
      "start",
      "-D",
      this.dataDir,
      "-p",
      "0",
      "-c",
      `unix_socket_directories=${this.dataDir}`,
    ];
    for (const [name, value] of Object.entries({ ...TEST_SETTINGS, ...options.settings })) {
      if (value === null) continue;
      args.push("-c", `${name}=${typeof value === "boolean" ? (value ? "on" : "off") : value}`);
    }
    // PGTS_TEST_DEFAULT_ADAPTER stands in for the server's default: the
    // suite as it would run if the default were that adapter.
    const adapter = this.adapter ?? process.env["PGTS_TEST_DEFAULT_ADAPTER"];
    if (adapter !== undefined && adapter !== "") args.push("--adapter", adapter);
    const cmd = [
      ...(options.wrap ?? []),
      ...pgtsCommand(this.runtime, args),
    ];
    const proc = Bun.spawn(cmd, {
      cwd: ROOT,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: {
        ...process.env,
        ...(this.runtime === "bun" ? TEST_SERVER_ENV : {}),
        ...options.env,
        NO_COLOR: "1",
        [TAG_VAR]: this.root,
      },
    });
    this.#proc = proc;
    this.#pids.push(proc.pid);
    this.#exitCode = null;
    // A previous start's process may be reported exited only now (`pgts stop` returns once
    // postmaster.pid is gone): its code must not stand for this one's.
    this.#exited = proc.exited.then((code) => {
      if (this.#proc === proc) this.#exitCode = code;
      return code;
    });
    // Read both pipes as they come: children inherit them and may outlive the postmaster.
    const readers = ([proc.stdout, proc.stderr] as ReadableStream<Uint8Array>[]).map((stream) =>
      (async () => {
        const decoder = new TextDecoder();
        try {
          for await (const chunk of stream) this.#log += decoder.decode(chunk, { stream: true });
        } catch {
          // closed
        }
      })()
    );
    // Deno type-strips and loads pgts's modules at each start: give it longer.
    const readyTimeoutMs = options.readyTimeoutMs ?? (this.runtime === "deno" ? 60_000 : 30_000);
    const lines = await waitFor("postmaster.pid to say ready", async () => {
      if (this.#exitCode !== null) {
        // The exit can be seen before the pipes' last bytes (the FATAL) are
        // read, on a loaded machine; a child holding them open bounds the wait.
        await Promise.race([Promise.all(readers), sleep(2000)]);
        throw new Error(
          `pgts start exited with code ${this.#exitCode} before ready:\n${this.#log}`,
        );
      }
      const l = this.pidFile();
      return l !== null && l[0] === String(proc.pid) && l[7]?.trim() === "ready" ? l : undefined;
    }, { timeoutMs: readyTimeoutMs, detail: () => this.#log });
    this.#port = Number(lines[3]);
    return this;
  }

  /** Children of the postmaster process (none under the in-process adapter). */
  childPids(): number[] {
    return childPidsOf(this.pid).filter(isAlive);
  }

  /** SIGKILLs the postmaster and every process under it at once: a power cut's end for each. */
  killAll(): void {
    for (const p of taggedProcesses(this.root)) killQuietly(p, "SIGKILL");
    killQuietly(this.pid, "SIGKILL");
  }

  /** Sends a signal to the postmaster. */
  kill(sig: NodeJS.Signals = "SIGKILL"): void {
    killQuietly(this.pid, sig);
  }

  /** `pgts stop -D dir -m mode` (waits, as pg_ctl does); resolves with the CLI's result. */
  stop(mode: StopMode = "fast", runtime: Runtime = "bun"): Promise<RunResult> {
    return pgtsCli(["stop", "-D", this.dataDir, "-m", mode], runtime);
  }

  /** `pgts reload -D dir`. */
  reload(): Promise<RunResult> {
    return pgtsCli(["reload", "-D", this.dataDir]);
  }

  appendConf(text: string): void {
    appendFileSync(join(this.dataDir, "postgresql.conf"), `\n${text}\n`);
  }

  /** Waits until the log matches `pattern` (after `from` characters); returns the match. */
  waitForLog(pattern: RegExp, options: { timeoutMs?: number; from?: number } = {}) {
    return waitFor(`log to match ${pattern}`, () => {
      const m = pattern.exec(this.#log.slice(options.from ?? 0));
      return m ?? undefined;
    }, { timeoutMs: options.timeoutMs ?? 15_000, detail: () => this.#log });
  }

  /** Runs psql on the Unix socket (or TCP); `-X -q -A -t -v ON_ERROR_STOP=1`. */
  async psql(sql: string, options: { tcp?: boolean } = {}): Promise<RunResult> {
    const host = options.tcp ? this.host : this.socketDir;
    const p = Bun.spawn(
      [
        `${PG_BIN}/psql`,
        "-X",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        host,
        "-p",
        String(this.port),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-c",
        sql,
      ],
      {
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
        env: { ...process.env, PGCONNECT_TIMEOUT: "10" },
      },
    );
    const [out, err, code] = await Promise.all([
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
      p.exited,
    ]);
    return { code, out, err };
  }

  /** A connected node-postgres client over TCP, closed at cleanup. */
  async client(options: { tcp?: boolean } = { tcp: true }): Promise<pg.Client> {
    const c = new pg.Client({
      host: options.tcp === false ? this.socketDir : this.host,
      port: this.port,
      user: "postgres",
      database: "postgres",
      connectionTimeoutMillis: 10_000,
    });
    // A server-side FATAL arrives as an 'error' event; the test inspects query results instead.
    c.on("error", () => {});
    this.#clients.add(c);
    await c.connect();
    return c;
  }

  /** Kills everything still running and removes the directory. Idempotent. */
  async cleanup(): Promise<void> {
    live.delete(this);
    for (const c of this.#clients) {
      c.end().catch(() => {});
    }
    this.#clients.clear();
    const pid = this.pid;
    if (pid !== 0) {
      // The postmaster and every process started under it, orphans included.
      for (const p of taggedProcesses(this.root)) killQuietly(p, "SIGKILL");
      killQuietly(pid, "SIGKILL");
      await Promise.race([this.#exited, sleep(5_000)]);
      for (const p of this.#pids) rmSync(join(tmpdir(), `.s.PGTS.engine.${p}`), { force: true });
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * A server over an existing data directory `root/d` (made by the test, a copy
 * of another's, say), not started; it is cleaned up, and `root` removed,
 * after the test.
 */
export function pgtsServerAt(
  root: string,
  options: { runtime?: Runtime; adapter?: Adapter } = {},
): PgtsServer {
  const server = new PgtsServer(root, options.runtime ?? TEST_RUNTIME, options.adapter);
  live.add(server);
  return server;
}

/** Starts a server on a fresh data directory; it is cleaned up after the test. */
export async function startPgts(options: StartOptions = {}): Promise<PgtsServer> {
  const server = await preparePgts(options);
  return await server.start(options);
}

/** A server on a fresh data directory, not started yet (to edit its files first). */
export async function preparePgts(
  options: { runtime?: Runtime; adapter?: Adapter } = {},
): Promise<PgtsServer> {
  const root = mkdtempSync(join(tmpdir(), "pgts-e2e-"));
  const server = new PgtsServer(root, options.runtime ?? TEST_RUNTIME, options.adapter);
  live.add(server);
  await freshDataDir(server.dataDir);
  return server;
}

/**
 * Registers the cleanup of every server a test started, and a default test
 * timeout that leaves room for a server's start; call once per test file.
 */
export function usePgtsServers(options: { timeoutMs?: number } = {}): void {
  setDefaultTimeout(options.timeoutMs ?? 60_000);
  const cleanupAll = async () => {
    await Promise.all([...live].map((s) => s.cleanup()));
  };
  afterEach(cleanupAll);
  afterAll(cleanupAll);
}

/** The server log's lines of backend `pid` (continuation lines too), without their time stamps. */
export function serverLogLines(log: string, pid: number): string[] {
  const out: string[] = [];
  let mine = false;
  for (const line of log.split("\n")) {
    const m = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \S+ \[(\d+)\] (.*)$/.exec(line);
    if (m !== null) {
      mine = Number(m[1]) === pid;
      if (mine) out.push(m[2]!);
    } else if (mine && line.startsWith("\t")) out.push(line);
  }
  return out;
}

/** The backend pid node-postgres got in BackendKeyData. */
export function backendPid(client: pg.Client): number {
  return (client as unknown as { processID: number }).processID;
}
