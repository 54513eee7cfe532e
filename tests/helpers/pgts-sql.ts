/**
 * What the real-client SQL tests (tests/e2e/sql) add to `pgts.ts`: one
 * server shared by a whole test file, servers made by `pgts init` with
 * options (`--auth`, `--pwfile`), the PostgreSQL client programs, and raw
 * sockets for the protocol edge cases no client produces.
 *
 * Servers made here are not in `usePgtsServers`'s per-test cleanup: a file
 * calls `useSqlServers()` once, and everything is killed and removed after
 * the file (or at the end of the test that asked for `perTest`).
 */

import { afterAll, afterEach, beforeAll, setDefaultTimeout } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import {
  PG_BIN,
  pgtsCli,
  PgtsServer,
  preparePgts,
  type RunResult,
  sleep,
  type StartOptions,
  TEST_RUNTIME,
  waitFor,
} from "./pgts.ts";

export { PG_BIN, PgtsServer, type RunResult, sleep, waitFor };

const fileServers = new Set<PgtsServer>();
const testServers = new Set<PgtsServer>();
const clients = new Set<{ end(): Promise<unknown> }>();

async function cleanUp(servers: Set<PgtsServer>): Promise<void> {
  const all = [...servers];
  servers.clear();
  await Promise.all(all.map((s) => s.cleanup()));
}

/** Registers the cleanup of this file's servers and clients; call once per file. */
export function useSqlServers(options: { timeoutMs?: number } = {}): void {
  setDefaultTimeout(options.timeoutMs ?? 60_000);
  afterEach(async () => {
    await cleanUp(testServers);
  });
  afterAll(async () => {
    await Promise.all([...clients].map((c) => c.end().catch(() => {})));
    clients.clear();
    await cleanUp(testServers);
    await cleanUp(fileServers);
  });
}

export interface SqlServerOptions extends StartOptions {
  /** Run `pgts init` with these extra arguments instead of copying the template. */
  readonly initArgs?: readonly string[];
  /** Lines appended to postgresql.conf before the start. */
  readonly conf?: string;
  /** pg_hba.conf's whole text, written before the start. */
  readonly hba?: string;
  /** Clean up at the end of the current test instead of the file. */
  readonly perTest?: boolean;
}

/** A client's error as node-postgres gives it: SQLSTATE, message, detail. */
export type PgErr = Error & { code?: string; detail?: string };

/** The error `p` rejects with; null when it succeeds. */
export const errorOf = (p: Promise<unknown>): Promise<PgErr | null> =>
  p.then(() => null, (e) => e as PgErr);

/** Starts a server (on a template copy, or a fresh `pgts init` with `initArgs`). */
export async function startSqlServer(options: SqlServerOptions = {}): Promise<PgtsServer> {
  let server: PgtsServer;
  if (options.initArgs !== undefined) {
    const root = mkdtempSync(join(tmpdir(), "pgts-sql-"));
    server = new PgtsServer(root, options.runtime ?? TEST_RUNTIME, options.adapter);
    (options.perTest ? testServers : fileServers).add(server);
    const r = await pgtsCli(["init", "-D", server.dataDir, ...options.initArgs]);
    if (r.code !== 0) throw new Error(`pgts init failed (${r.code}):\n${r.out}\n${r.err}`);
  } else {
    server = await preparePgts(options);
    (options.perTest ? testServers : fileServers).add(server);
  }
  if (options.conf !== undefined) server.appendConf(options.conf);
  if (options.hba !== undefined) writeFileSync(join(server.dataDir, "pg_hba.conf"), options.hba);
  return await server.start(options);
}

/** One server for the whole file, started before its first test. */
export function sharedServer(options: SqlServerOptions = {}): () => PgtsServer {
  let server: PgtsServer | null = null;
  beforeAll(async () => {
    server = await startSqlServer(options);
  }, 90_000);
  return () => {
    if (server === null) throw new Error("the shared server did not start");
    return server;
  };
}

// ---- clients -----------------------------------------------------------------

export interface ConnectAs {
  readonly user?: string;
  readonly password?: string;
  readonly database?: string;
  /** Over the Unix socket instead of TCP. */
  readonly unix?: boolean;
  /** The startup packet's `options` (`-c name=value`...). */
  readonly options?: string;
}

/** A node-postgres client config for `server`. */
export function pgConfig(server: PgtsServer, as: ConnectAs = {}): pg.ClientConfig {
  return {
    host: as.unix ? server.socketDir : server.host,
    port: server.port,
    user: as.user ?? "postgres",
    database: as.database ?? "postgres",
    ...(as.password !== undefined ? { password: as.password } : {}),
    ...(as.options !== undefined ? { options: as.options } : {}),
    // The first connection to a database opens its engine (a PGlite start,
    // seconds of CPU on a loaded 2-CPU machine): in one CI run a connect to a
    // database made a moment before timed out at 10 s, and since clients end
    // after the file, its leftovers then made the next test's count wrong.
    connectionTimeoutMillis: 30_000,
  };
}

/** A connected node-postgres client, ended after the file. Errors after connect are collected. */
export async function pgClient(
  server: PgtsServer,
  as: ConnectAs = {},
): Promise<pg.Client & { asyncErrors: Error[] }> {
  const c = new pg.Client(pgConfig(server, as)) as pg.Client & { asyncErrors: Error[] };
  c.asyncErrors = [];
  c.on("error", (e) => c.asyncErrors.push(e));
  clients.add(c);
  await c.connect();
  return c;
}

/** Tries to connect; resolves with the error (or null when it connected, then closes). */
export async function connectError(
  server: PgtsServer,
  as: ConnectAs = {},
): Promise<(Error & { code?: string; severity?: string }) | null> {
  const c = new pg.Client(pgConfig(server, as));
  c.on("error", () => {});
  try {
    await c.connect();
  } catch (e) {
    return e as Error & { code?: string };
  }
  await c.end().catch(() => {});
  return null;
}

/** The environment of a PostgreSQL client program that connects to `server` over its Unix socket. */
export function pgEnv(server: PgtsServer): Record<string, string | undefined> {
  return {
    ...process.env,
    PGHOST: server.socketDir,
    PGPORT: String(server.port),
    PGUSER: "postgres",
    PGDATABASE: "postgres",
    PGCONNECT_TIMEOUT: "10",
    PGOPTIONS: "",
  };
}

/** Runs a PostgreSQL client program (psql, pgbench) against `server` over its Unix socket. */
export async function runPg(
  server: PgtsServer,
  program: "psql" | "pgbench",
  args: readonly string[],
  options: { stdin?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunResult> {
  const p = Bun.spawn([`${PG_BIN}/${program}`, ...args], {
    stdin: options.stdin !== undefined ? new TextEncoder().encode(options.stdin) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...pgEnv(server), ...options.env },
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

/** `psql -X -A -t -v ON_ERROR_STOP=1 ...args`. */
export function psql(
  server: PgtsServer,
  args: readonly string[],
  options: { stdin?: string; env?: Record<string, string> } = {},
): Promise<RunResult> {
  return runPg(server, "psql", ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", ...args], options);
}

// ---- raw protocol --------------------------------------------------------------

/** A type byte and a body, framed with its length word. */
export function message(type: string, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(5 + body.length);
  out[0] = type.charCodeAt(0);
  new DataView(out.buffer).setInt32(1, body.length + 4);
  out.set(body, 5);
  return out;
}

/** A big-endian int32, as the protocol's lengths and counts are. */
export function int32(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setInt32(0, n);
  return out;
}

/** A C string (text plus NUL). */
export function cstr(s: string): Uint8Array {
  return new TextEncoder().encode(`${s}\0`);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A StartupMessage (protocol `version`, default 3.0) with these parameters. */
export function startupPacket(
  params: Record<string, string> = { user: "postgres", database: "postgres" },
  version = 0x0003_0000,
): Uint8Array {
  const body = concat(
    ...Object.entries(params).flatMap(([k, v]) => [cstr(k), cstr(v)]),
    new Uint8Array([0]),
  );
  const out = new Uint8Array(8 + body.length);
  const dv = new DataView(out.buffer);
  dv.setInt32(0, out.length);
  dv.setInt32(4, version);
  out.set(body, 8);
  return out;
}

/** A CancelRequest for backend `pid` with `key`. */
export function cancelRequest(pid: number, key: number): Uint8Array {
  const out = new Uint8Array(16);
  const dv = new DataView(out.buffer);
  dv.setInt32(0, 16);
  dv.setInt32(4, 80877102);
  dv.setInt32(8, pid);
  dv.setInt32(12, key);
  return out;
}

/**
 * Sends a CancelRequest for (pid, key) on a connection of its own, as a
 * driver does, and waits until the server has closed that connection.
 */
export async function sendCancelRequest(
  server: { readonly host: string; readonly port: number },
  pid: number,
  key: number,
): Promise<void> {
  const raw = await RawConnection.open(server);
  raw.send(cancelRequest(pid, key));
  await raw.drain();
}

export interface BackendMessage {
  readonly type: string;
  readonly body: Uint8Array;
}

/** The fields of an ErrorResponse or NoticeResponse body, by field letter. */
export function errorFields(body: Uint8Array): Record<string, string> {
  const fields: Record<string, string> = {};
  let at = 0;
  const dec = new TextDecoder();
  while (at < body.length && body[at] !== 0) {
    const code = String.fromCharCode(body[at]!);
    const end = body.indexOf(0, at + 1);
    fields[code] = dec.decode(body.subarray(at + 1, end));
    at = end + 1;
  }
  return fields;
}

/** A raw TCP connection to a server: send bytes, read backend messages, see the close. */
export class RawConnection {
  readonly socket: Socket;
  #buf = new Uint8Array(0);
  #closed = false;
  #wake: (() => void) | null = null;
  readonly closed: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    let onClosed = () => {};
    this.closed = new Promise((r) => (onClosed = r));
    socket.on("data", (chunk: Buffer) => {
      this.#buf = concat(this.#buf, new Uint8Array(chunk));
      this.#notify();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.#closed = true;
      onClosed();
      this.#notify();
    });
  }

  static open(server: { readonly host: string; readonly port: number }): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: server.host, port: server.port }, () => {
        s.off("error", reject);
        resolve(new RawConnection(s));
      });
      s.once("error", reject);
    });
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  send(bytes: Uint8Array): void {
    if (!this.#closed) this.socket.write(bytes);
  }

  /** Bytes received and not yet read as messages. */
  get pending(): Uint8Array {
    return this.#buf;
  }

  /** The next whole backend message, or null once the server closed the connection. */
  async next(timeoutMs = 15_000): Promise<BackendMessage | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.#buf.length >= 5) {
        const len = new DataView(this.#buf.buffer, this.#buf.byteOffset).getInt32(1);
        if (this.#buf.length >= 1 + len) {
          const m = {
            type: String.fromCharCode(this.#buf[0]!),
            body: this.#buf.slice(5, 1 + len),
          };
          this.#buf = this.#buf.slice(1 + len);
          return m;
        }
      }
      if (this.#closed) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for a backend message");
      await Promise.race([new Promise<void>((r) => (this.#wake = r)), sleep(left)]);
    }
  }

  /** Reads messages until one of type `type` (returned) or the close (null). */
  async until(type: string, timeoutMs = 15_000): Promise<BackendMessage | null> {
    for (;;) {
      const m = await this.next(timeoutMs);
      if (m === null || m.type === type) return m;
    }
  }

  /**
   * The types of the messages read up to and including the next one of
   * type `type` ("(closed)" last if the server closed first), joined.
   */
  async typesUntil(type: string, timeoutMs = 15_000): Promise<string> {
    const seen: string[] = [];
    for (;;) {
      const m = await this.next(timeoutMs);
      if (m === null) return [...seen, "(closed)"].join("");
      seen.push(m.type);
      if (m.type === type) return seen.join("");
    }
  }

  /** Reads everything until the server closes the connection. */
  async drain(timeoutMs = 15_000): Promise<BackendMessage[]> {
    const all: BackendMessage[] = [];
    for (;;) {
      const m = await this.next(timeoutMs);
      if (m === null) return all;
      all.push(m);
    }
  }

  /** Startup as `postgres` (trust) up to the first ReadyForQuery; returns pid and key. */
  async startup(
    params: Record<string, string> = { user: "postgres", database: "postgres" },
  ): Promise<{ pid: number; key: number }> {
    this.send(startupPacket(params));
    let pid = 0;
    let key = 0;
    for (;;) {
      const m = await this.next();
      if (m === null) throw new Error("the server closed the connection during startup");
      if (m.type === "E") throw new Error(`startup failed: ${JSON.stringify(errorFields(m.body))}`);
      if (m.type === "K") {
        const dv = new DataView(m.body.buffer, m.body.byteOffset);
        pid = dv.getInt32(0);
        key = dv.getInt32(4);
      }
      if (m.type === "Z") return { pid, key };
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
