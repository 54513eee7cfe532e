/**
 * The bench's own small PostgreSQL client: startup with trust auth, simple
 * queries, nothing else. It is what "a small client for `SELECT 1`" measures
 * without pgbench's per-transaction work, and what holds idle connections
 * open for the memory figures. It never parses rows: a query is done at
 * ReadyForQuery, and an ErrorResponse fails it.
 */

import net from "node:net";
import { BE, FE } from "../../../src/core/protocol/constants.ts";

export interface Address {
  readonly host: string;
  readonly port: number;
  readonly user?: string;
  readonly database?: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function startupPacket(user: string, database: string): Uint8Array {
  const body = enc.encode(`user\0${user}\0database\0${database}\0application_name\0bench\0\0`);
  const out = new Uint8Array(8 + body.length);
  const view = new DataView(out.buffer);
  view.setInt32(0, out.length);
  view.setInt32(4, 196608);
  out.set(body, 8);
  return out;
}

/** A simple-protocol Query message. */
export function queryMessage(sql: string): Uint8Array {
  const body = enc.encode(sql + "\0");
  const out = new Uint8Array(5 + body.length);
  out[0] = FE.Query;
  new DataView(out.buffer).setInt32(1, 4 + body.length);
  out.set(body, 5);
  return out;
}

const TERMINATE = new Uint8Array([FE.Terminate, 0, 0, 0, 4]);

export class BenchClient {
  #socket: net.Socket;
  #buf = new Uint8Array(0);
  #waiter: { resolve: () => void; reject: (e: Error) => void } | null = null;
  #error: string | null = null;
  #closed = false;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Uint8Array) => this.#receive(chunk));
    socket.on("error", () => {});
    socket.on("close", () => {
      this.#closed = true;
      this.#waiter?.reject(new Error("server closed the connection"));
      this.#waiter = null;
    });
  }

  static connect(address: Address): Promise<BenchClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: address.host, port: address.port });
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        const client = new BenchClient(socket);
        client.#untilReady().then(() => resolve(client), reject);
        socket.write(startupPacket(address.user ?? "postgres", address.database ?? "postgres"));
      });
    });
  }

  /** Runs `message` (bytes of one or more Query messages); resolves at ReadyForQuery. */
  send(message: Uint8Array): Promise<void> {
    const done = this.#untilReady();
    this.#socket.write(message);
    return done;
  }

  close(): void {
    if (this.#closed) return;
    this.#socket.end(TERMINATE);
  }

  #untilReady(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("connection is closed"));
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  #receive(chunk: Uint8Array): void {
    let buf = chunk;
    if (this.#buf.length > 0) {
      buf = new Uint8Array(this.#buf.length + chunk.length);
      buf.set(this.#buf);
      buf.set(chunk, this.#buf.length);
    }
    let at = 0;
    while (buf.length - at >= 5) {
      const len = new DataView(buf.buffer, buf.byteOffset + at + 1, 4).getInt32(0);
      if (buf.length - at < 1 + len) break;
      const type = buf[at]!;
      if (type === BE.ErrorResponse) this.#error = dec.decode(buf.subarray(at + 5, at + 1 + len));
      else if (type === BE.AuthenticationRequest) {
        const code = new DataView(buf.buffer, buf.byteOffset + at + 5, 4).getInt32(0);
        if (code !== 0) this.#error = `authentication method ${code} is not supported`;
      } else if (type === BE.ReadyForQuery) {
        const w = this.#waiter;
        this.#waiter = null;
        const error = this.#error;
        this.#error = null;
        if (error !== null) w?.reject(new Error(error.replace(/\0/g, " ").trim()));
        else w?.resolve();
      }
      at += 1 + len;
    }
    this.#buf = at === buf.length ? new Uint8Array(0) : buf.slice(at);
  }
}

export interface LoadResult {
  readonly tps: number;
  readonly latencyMs: number;
  readonly transactions: number;
}

/**
 * `clients` connections each send `sql` and wait for the answer, back to back,
 * for `durationMs`; connection time is not counted (like pgbench's "without
 * initial connection time").
 */
export async function closedLoop(
  address: Address,
  options: { clients: number; durationMs: number; sql: string },
): Promise<LoadResult> {
  const clients = await Promise.all(
    Array.from({ length: options.clients }, () => BenchClient.connect(address)),
  );
  const message = queryMessage(options.sql);
  let n = 0;
  const t0 = performance.now();
  const end = t0 + options.durationMs;
  await Promise.all(clients.map(async (c) => {
    while (performance.now() < end) {
      await c.send(message);
      n++;
    }
  }));
  const elapsed = performance.now() - t0;
  for (const c of clients) c.close();
  return {
    tps: n / (elapsed / 1000),
    latencyMs: elapsed * options.clients / Math.max(n, 1),
    transactions: n,
  };
}
