/**
 * A protocol fuzzer for a running server: seeded, bounded, and free of the
 * test runner, so that the CI test (tests/e2e/hostile) and scripts/fuzz.ts
 * share it. It opens connections in rounds and, in every state a client can
 * be in (before the startup packet, in authentication, idle, inside an
 * extended-query batch, in COPY FROM STDIN begun by a Query or by an
 * extended batch), sends random and mutated frontend messages, then
 * leaves as a hostile client would: closes at once,
 * mid-message, after a Terminate, or after reading for a while. Every
 * connection of a round is gone before the next round starts, and after
 * each round a fresh client must be served at once: a connection that has
 * gone may not hold the engine.
 *
 * The same seed sends the same bytes; what the server answers is read and
 * dropped (the fuzzer asserts only that the server keeps serving).
 */

import { connect, type Socket } from "node:net";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import pg from "pg";

// ---- random ------------------------------------------------------------------

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

// ---- frontend messages ----------------------------------------------------------

const enc = new TextEncoder();

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function cstr(s: string): Uint8Array {
  return enc.encode(`${s}\0`);
}

function int16(n: number): Uint8Array {
  const b = new Uint8Array(2);
  new DataView(b.buffer).setInt16(0, n);
  return b;
}

function int32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, n);
  return b;
}

function msg(type: string, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  return concat([enc.encode(type), int32(body.length + 4), body]);
}

export function startupPacket(params: Record<string, string>, version = 0x0003_0000): Uint8Array {
  const body = concat([
    int32(version),
    ...Object.entries(params).flatMap(([k, v]) => [cstr(k), cstr(v)]),
    new Uint8Array([0]),
  ]);
  return concat([int32(body.length + 4), body]);
}

const SQL = [
  "select 1",
  "select pg_sleep(0.05)",
  "begin",
  "commit",
  "rollback",
  "begin; insert into fuzz values (1)",
  "insert into fuzz values (2)",
  "select count(*) from fuzz",
  "copy fuzz from stdin",
  "copy fuzz to stdout",
  "set statement_timeout = '1s'",
  "set statement_timeout = '30ms'; select pg_sleep(0.02); select pg_sleep(0.02)",
  "set transaction_timeout = '300ms'",
  "begin; set local transaction_timeout = '50ms'",
  "reset all",
  "select * from nosuchtable",
  "savepoint a",
  "listen fuzzch",
  "notify fuzzch, 'x'",
  "select $1::int",
  "select generate_series(1, 1000)",
  "prepare p1 as select 1",
  "execute p1",
  "deallocate all",
  "discard all",
  "",
  ";;",
  "select '\u00e9'",
];

/** A well-formed message of some frontend type, with plausible contents. */
function validMessage(r: Rng): Uint8Array {
  const sql = r.pick(SQL);
  const name = r.chance(0.5) ? "" : `s${r.int(4)}`;
  switch (r.int(13)) {
    case 0:
    case 1:
      return msg("Q", cstr(sql));
    case 2:
    case 3:
      return msg(
        "P",
        concat([cstr(name), cstr(sql), int16(r.int(2)), ...(r.chance(0.5) ? [int32(23)] : [])]),
      );
    case 4: {
      const nParams = r.int(2);
      const params = [];
      for (let i = 0; i < nParams; i++) params.push(int32(1), enc.encode(String(r.int(9))));
      return msg(
        "B",
        concat([
          cstr(r.chance(0.5) ? "" : "p"),
          cstr(name),
          int16(0),
          int16(nParams),
          ...params,
          int16(0),
        ]),
      );
    }
    case 5:
      return msg("D", concat([enc.encode(r.pick(["S", "P"])), cstr(name)]));
    case 6:
      return msg("E", concat([cstr(r.chance(0.8) ? "" : "p"), int32(r.int(3))]));
    case 7:
      return msg("S");
    case 8:
      return msg("H");
    case 9:
      return msg("C", concat([enc.encode(r.pick(["S", "P"])), cstr(name)]));
    case 10:
      return msg("d", enc.encode(r.chance(0.5) ? `${r.int(100)}\n` : "x\ty\n"));
    case 11:
      return msg("c");
    default:
      return msg("f", cstr("fuzz"));
  }
}

/** A body of `n` random bytes behind a real or random type byte, correctly framed. */
function randomMessage(r: Rng, n: number): Uint8Array {
  const type = r.chance(0.8) ? r.pick([..."QPBDESHCdcfFXp"]) : String.fromCharCode(r.int(256));
  const body = r.bytes(n);
  const out = new Uint8Array(5 + n);
  out[0] = type.charCodeAt(0) & 0xff;
  new DataView(out.buffer).setInt32(1, n + 4);
  out.set(body, 5);
  return out;
}

/** A message with some of its bytes changed, cut short, or its length word replaced. */
function mutate(r: Rng, m: Uint8Array): Uint8Array {
  const out = m.slice();
  switch (r.int(5)) {
    case 0: // flip bytes
      for (let i = 0, n = 1 + r.int(4); i < n && out.length > 0; i++) {
        out[r.int(out.length)] = r.int(256);
      }
      return out;
    case 1: // truncate
      return out.subarray(0, r.int(out.length));
    case 2: // a length word from the edges
      if (out.length >= 5) {
        new DataView(out.buffer).setInt32(
          1,
          r.pick([0, 3, 4, 5, -1, 10_001, 0x3fff_fffe, 0x7fff_ffff, out.length + r.int(64)]),
        );
      }
      return out;
    case 3: // another type byte
      if (out.length > 0) out[0] = r.int(256);
      return out;
    default: // NUL terminators removed
      return out.map((b, i) => (i >= 5 && b === 0 && r.chance(0.5) ? 0x41 : b));
  }
}

/** The next message to send: valid, random, mutated, sometimes big. */
function anyMessage(r: Rng, opts: { bigBytes: number }): Uint8Array {
  const p = r.next();
  if (p < 0.45) return validMessage(r);
  if (p < 0.75) return mutate(r, validMessage(r));
  if (p < 0.97) return randomMessage(r, r.int(64));
  // Big bodies: a random or a COPY data message, whole or cut short.
  const n = opts.bigBytes > 0 ? 1 + r.int(opts.bigBytes) : r.int(64);
  const big = r.chance(0.5) ? randomMessage(r, n) : msg("d", r.bytes(n));
  return r.chance(0.7) ? big : big.subarray(0, r.int(big.length));
}

// ---- a raw connection -------------------------------------------------------------

/** Just enough of a client to reach a state: sends bytes, finds backend message types. */
class Raw {
  readonly socket: Socket;
  #buf: Uint8Array = new Uint8Array(0);
  #at = 0;
  closed = false;
  #wake: (() => void) | null = null;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (c: Buffer) => {
      // Keep only what is unread: a hostile client's answer may be large.
      this.#buf = concat([this.#buf.subarray(this.#at), new Uint8Array(c)]);
      this.#at = 0;
      this.#wake?.();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      this.#wake?.();
    });
  }

  static open(host: string, port: number): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port }, () => {
        s.off("error", reject);
        resolve(new Raw(s));
      });
      s.once("error", reject);
    });
  }

  send(b: Uint8Array): void {
    if (!this.closed) this.socket.write(b);
  }

  /** Reads backend messages until one of `types` (its type) or close/timeout (null). */
  async until(types: string, ms: number): Promise<string | null> {
    const deadline = Date.now() + ms;
    for (;;) {
      while (this.#buf.length - this.#at >= 5) {
        const len = new DataView(this.#buf.buffer, this.#buf.byteOffset + this.#at + 1).getInt32(0);
        if (this.#buf.length - this.#at < 1 + len) break;
        const t = String.fromCharCode(this.#buf[this.#at]!);
        this.#at += 1 + len;
        if (types.includes(t)) return t;
      }
      if (this.closed) return null;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((res) => {
        const timer = setTimeout(res, left);
        this.#wake = () => {
          clearTimeout(timer);
          res();
        };
      });
      this.#wake = null;
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

// ---- the run ------------------------------------------------------------------------

export type FuzzState = "startup" | "authentication" | "idle" | "extended" | "copy";
export const FUZZ_STATES: readonly FuzzState[] = [
  "startup",
  "authentication",
  "idle",
  "extended",
  "copy",
];

export interface FuzzTarget {
  readonly host: string;
  readonly port: number;
  /** A role that logs in with a password over TCP (its name), for the authentication state. */
  readonly passwordUser: string;
  /** A trusted role. */
  readonly user: string;
}

export interface FuzzOptions {
  readonly seed: number;
  /** Frontend messages to send in all (the run's bound). */
  readonly messages: number;
  /** Connections at a time in a round. */
  readonly concurrency?: number;
  /** Largest random body sent now and then (default 1 MiB). */
  readonly bigBytes?: number;
  /** Called after each round with the health check's result. */
  readonly onRound?: (r: RoundResult) => void;
}

export interface RoundResult {
  readonly round: number;
  readonly sent: number;
  readonly connections: number;
  /** ms for a fresh client to connect and run `select 1`; null when it failed. */
  readonly healthMs: number | null;
  readonly healthError: string | null;
}

export interface FuzzResult {
  readonly sent: number;
  readonly connections: number;
  readonly rounds: RoundResult[];
  readonly byState: Record<FuzzState, number>;
}

/** One fresh client: connect, `select 1`, end. ms taken, or the error. */
export async function healthCheck(target: FuzzTarget, timeoutMs = 10_000): Promise<number> {
  const t0 = performance.now();
  const c = new pg.Client({
    host: target.host,
    port: target.port,
    user: target.user,
    database: "postgres",
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  });
  c.on("error", () => {});
  try {
    await c.connect();
    const r = await c.query("select 1 as one");
    if (r.rows[0]?.one !== 1) throw new Error("select 1 did not answer 1");
    return performance.now() - t0;
  } finally {
    await c.end().catch(() => {});
  }
}

/** Makes what the run needs: table `fuzz`, and a password role `fuzz_pw` (password 'pw'). */
export async function prepareFuzzTarget(host: string, port: number): Promise<void> {
  const c = new pg.Client({ host, port, user: "postgres", database: "postgres" });
  await c.connect();
  try {
    await c.query("create table if not exists fuzz (n int)");
    await c.query(
      "do $$ begin if not exists (select from pg_roles where rolname = 'fuzz_pw') then create role fuzz_pw login password 'pw'; end if; end $$",
    );
  } finally {
    await c.end();
  }
}

/** pg_hba.conf lines that make `fuzz_pw` authenticate with SCRAM and everyone else trusted. */
export const FUZZ_HBA = [
  "local all all trust",
  "host all fuzz_pw 0.0.0.0/0 scram-sha-256",
  "host all all 0.0.0.0/0 trust",
  "host all all ::/0 trust",
  "",
].join("\n");

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One connection: reach `state`, send `count` messages, leave. Returns messages sent. */
async function oneConnection(
  target: FuzzTarget,
  r: Rng,
  state: FuzzState,
  count: number,
  bigBytes: number,
): Promise<number> {
  let raw: Raw;
  try {
    raw = await Raw.open(target.host, target.port);
  } catch {
    return 0;
  }
  let sent = 0;
  try {
    switch (state) {
      case "startup":
        break;
      case "authentication":
        raw.send(startupPacket({ user: target.passwordUser, database: "postgres" }));
        if ((await raw.until("RE", 5000)) !== "R") return 1;
        sent++;
        break;
      case "idle":
      case "extended":
      case "copy": {
        raw.send(startupPacket({ user: target.user, database: "postgres" }));
        if ((await raw.until("ZE", 5000)) !== "Z") return 1;
        sent++;
        if (state === "extended") {
          raw.send(msg("P", concat([cstr(""), cstr("select 1"), int16(0)])));
          raw.send(msg("B", concat([cstr(""), cstr(""), int16(0), int16(0), int16(0)])));
          sent += 2;
        } else if (state === "copy") {
          // A Query's COPY, or an extended batch's (the Sync before the data
          // is PostgreSQL's to ignore).
          if (r.chance(0.5)) {
            raw.send(msg("Q", cstr("copy fuzz from stdin")));
            sent++;
          } else {
            raw.send(msg("P", concat([cstr(""), cstr("copy fuzz from stdin"), int16(0)])));
            raw.send(msg("B", concat([cstr(""), cstr(""), int16(0), int16(0), int16(0)])));
            raw.send(msg("E", concat([cstr(""), new Uint8Array(4)])));
            raw.send(msg("S"));
            sent += 4;
          }
          if ((await raw.until("GZ", 5000)) !== "G") return sent;
        }
        break;
      }
    }
    for (let i = 0; i < count; i++) {
      let m: Uint8Array;
      if (state === "startup") {
        m = r.chance(0.5)
          ? mutate(
            r,
            startupPacket(
              { user: target.user, database: "postgres" },
              r.pick([0x0003_0000, 0x0003_0002, 80877103, 80877102, 80877104]),
            ),
          )
          : r.bytes(r.int(r.chance(0.1) ? 20_000 : 40));
      } else if (state === "authentication") {
        m = r.chance(0.5) ? msg("p", r.bytes(r.int(100))) : anyMessage(r, { bigBytes: 0 });
      } else if (state === "copy" && r.chance(0.6)) {
        m = r.chance(0.8)
          ? msg("d", r.chance(0.5) ? enc.encode(`${r.int(100)}\n`) : r.bytes(r.int(200)))
          : mutate(r, msg("d", r.bytes(20)));
      } else {
        m = anyMessage(r, { bigBytes });
      }
      raw.send(m);
      sent++;
      if (raw.closed) break;
      if (r.chance(0.2)) await sleep(r.int(20));
    }
    // How the client leaves.
    switch (r.int(5)) {
      case 0:
        break; // at once
      case 1:
        await raw.until("", r.int(200)); // reads a little, then goes
        break;
      case 2:
        raw.send(msg("X"));
        await raw.until("", 100);
        break;
      case 3:
        raw.send(msg("Q", cstr("select 1")).subarray(0, 3)); // mid-message
        break;
      default:
        raw.send(msg("S"));
        await raw.until("Z", 300);
    }
  } finally {
    raw.destroy();
  }
  return sent;
}

/** Runs the fuzzer against a server until `messages` are sent. */
export async function runFuzz(target: FuzzTarget, options: FuzzOptions): Promise<FuzzResult> {
  const r = new Rng(options.seed);
  const concurrency = options.concurrency ?? 4;
  const bigBytes = options.bigBytes ?? 1 << 20;
  const byState = { startup: 0, authentication: 0, idle: 0, extended: 0, copy: 0 };
  const rounds: RoundResult[] = [];
  let sent = 0;
  let connections = 0;
  for (let round = 1; sent < options.messages; round++) {
    const jobs: Promise<number>[] = [];
    for (let i = 0; i < concurrency; i++) {
      const state = r.pick(FUZZ_STATES);
      const count = 1 + r.int(30);
      byState[state]++;
      connections++;
      // Each connection draws from its own generator, so timing does not change the bytes.
      jobs.push(oneConnection(target, new Rng(r.int(2 ** 32)), state, count, bigBytes));
    }
    for (const n of await Promise.all(jobs)) sent += n;
    let healthMs: number | null = null;
    let healthError: string | null = null;
    try {
      healthMs = await healthCheck(target);
    } catch (e) {
      healthError = e instanceof Error ? e.message : String(e);
    }
    const rr = { round, sent, connections, healthMs, healthError };
    rounds.push(rr);
    options.onRound?.(rr);
  }
  return { sent, connections, rounds, byState };
}

// ---- what the server's processes use ---------------------------------------------

export interface ProcessUsage {
  readonly processes: number;
  readonly fds: number;
  readonly rssMiB: number;
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const t = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
      if (t !== "") out.push(...t.split(/\s+/).map(Number));
    }
  } catch {
    // gone
  }
  return out;
}

/** Processes, open fds and RSS of `pid` and all its descendants. */
export function processUsage(pid: number): ProcessUsage {
  const all: number[] = [];
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop()!;
    all.push(p);
    todo.push(...childrenOf(p));
  }
  let processes = 0;
  let fds = 0;
  let rssKiB = 0;
  for (const p of all) {
    try {
      const status = readFileSync(`/proc/${p}/status`, "utf8");
      if (/^State:\s+Z/m.test(status)) continue;
      rssKiB += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      fds += readdirSync(`/proc/${p}/fd`).filter((fd) => {
        try {
          readlinkSync(`/proc/${p}/fd/${fd}`);
          return true;
        } catch {
          return false;
        }
      }).length;
      processes++;
    } catch {
      // gone
    }
  }
  return { processes, fds, rssMiB: Math.round(rssKiB / 1024) };
}
