/**
 * One pooled upstream connection, pgbouncer's "server": the socket, the
 * framing of what the upstream sends, and what pgts knows this connection
 * carries: the settings map it was last switched to (`carried`), the
 * ParameterStatus values it reported, and the protocol-level prepared
 * statements it holds (an LRU bounded by max_prepared_statements).
 *
 * Whoever holds the connection (a client's session, or the pool running a
 * query of its own) sets `handler` and gets every backend message whole, as
 * a subarray of the chunk read when it fits in one (no copy), else
 * assembled; `onChunkEnd` marks where a read ended, so that the holder can
 * write what it gathered to its client in one piece.
 *
 * The pool, not this module, decides who holds it; this module never writes
 * to a client.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import type { Connection } from "../../core/adapter.ts";
import {
  BE,
  MessageWriter,
  parseDataRowText,
  parseErrorResponse,
  parseParameterStatus,
  pgErrorFromFields,
  writeQuery,
} from "../../core/protocol/mod.ts";
import type { TransactionStatus } from "../../core/engine/types.ts";
import type { UpstreamConnect, UpstreamConnection } from "./connect.ts";
import { UpstreamCancel } from "./cancel.ts";
import type { UpstreamAddress, UpstreamTarget } from "./url.ts";
import { FE } from "../../core/protocol/constants.ts";

/** PostgreSQL's own limit on a message it sends. */
const MAX_BACKEND_MESSAGE = 0x7fffffff;
const TERMINATE = new Uint8Array([FE.Terminate, 0, 0, 0, 4]);

export interface ServerHandler {
  /** One whole backend message: `buf[start..end)`, type byte first. */
  message(type: number, buf: Uint8Array, start: number, end: number): void;
  /** The read that delivered the messages so far ended. */
  chunkEnd(): void;
  /** The upstream closed the connection or sent bytes no PostgreSQL sends. */
  lost(reason: PgError): void;
}

export interface QueryResult {
  rows: (string | null)[][];
  error: PgError | null;
  status: TransactionStatus;
}

let nextServerId = 1;

export class PoolServer {
  readonly id = nextServerId++;
  readonly pid: number;
  readonly key: Uint8Array;
  readonly openedAt = Date.now();
  /** When a client (or the pool) was last given it. */
  assignedAt = Date.now();
  /** The session it serves now, for the console. */
  client: { readonly id: number } | null = null;
  /** When it last went back to the pool (for server_idle_timeout). */
  idleSince = Date.now();
  /** ParameterStatus values as the upstream last reported them. */
  readonly reported = new Map<string, string>();
  /** The settings map the connection carries (settings.ts), null until read. */
  carried: ReadonlyMap<string, string> | null = null;
  /** Server-side names of the protocol statements it holds, least recently used first. */
  readonly prepared = new Map<string, true>();
  /** The last ReadyForQuery status. */
  status: TransactionStatus = "I";
  handler: ServerHandler | null = null;
  closed = false;

  #conn: Connection;
  #target: UpstreamTarget;
  #connect: UpstreamConnect;
  #address: UpstreamAddress;
  /** Where it is connected, for the console. */
  get address(): UpstreamAddress {
    return this.#address;
  }
  /** A message split across reads, gathered here. */
  #partial: Uint8Array | null = null;
  #partialLen = 0;
  #header = new Uint8Array(5);
  #headerLen = 0;
  #onClosed: (server: PoolServer) => void;
  /** Its cancels, and the writes that must not overtake them. */
  #cancels: UpstreamCancel;

  constructor(upstream: UpstreamConnection, options: {
    target: UpstreamTarget;
    connect: UpstreamConnect;
    /** Called once when the connection has gone, whoever ended it. */
    onClosed: (server: PoolServer) => void;
  }) {
    this.#conn = upstream.conn;
    this.#target = options.target;
    this.#connect = options.connect;
    this.#address = upstream.address;
    this.#onClosed = options.onClosed;
    this.#cancels = new UpstreamCancel(
      () => this.#connect(this.#address),
      (bytes) => {
        if (!this.closed) this.#conn.write(bytes);
      },
    );
    this.pid = upstream.pid;
    this.key = upstream.key;
    for (const [name, value] of upstream.parameterStatus) this.reported.set(name, value);
    this.#conn.onData = (chunk) => this.#receive(chunk);
    this.#conn.onClose = () => this.#lost(null);
    if (upstream.rest.length > 0) this.#receive(upstream.rest);
    this.#conn.resume();
  }

  /** Sends bytes to the upstream; held while a cancel for this connection is in flight (cancel.ts). */
  write(bytes: Uint8Array): void {
    if (!this.closed) this.#cancels.write(bytes);
  }

  /** CancelRequest for what this connection runs, on a connection of its own. */
  cancel(): void {
    if (!this.closed) this.#cancels.send(this.pid, this.key);
  }

  /** Terminate and hang up. */
  close(): void {
    if (this.closed) return;
    this.#conn.write(TERMINATE);
    this.#conn.end();
    this.#lost(null, false);
  }

  /**
   * Runs one simple Query of pgts's own on a connection nobody else uses
   * now; the rows of its last result, and its first error.
   */
  query(sql: string): Promise<QueryResult> {
    if (this.closed) return Promise.reject(this.#gone());
    return new Promise<QueryResult>((resolve, reject) => {
      let rows: (string | null)[][] = [];
      let error: PgError | null = null;
      const previous = this.handler;
      this.handler = {
        message: (type, buf, start, end) => {
          const body = buf.subarray(start + 5, end);
          if (type === BE.RowDescription) rows = [];
          else if (type === BE.DataRow) rows.push(parseDataRowText(body));
          else if (type === BE.ErrorResponse) {
            error ??= pgErrorFromFields(parseErrorResponse(body));
          } else if (type === BE.ReadyForQuery) {
            this.handler = previous;
            resolve({ rows, error, status: this.status });
          }
        },
        chunkEnd: () => {},
        lost: (reason) => {
          this.handler = previous;
          reject(reason);
        },
      };
      this.write(MessageWriter.encode((w) => writeQuery(w, sql)));
    });
  }

  #gone(): PgError {
    return new PgError(
      ERRCODE.CONNECTION_FAILURE,
      "terminating connection because the upstream server closed the connection",
      { severity: "FATAL", detail: `The upstream server is "${this.#target.display}".` },
    );
  }

  #lost(reason: PgError | null, destroy = true): void {
    if (this.closed) return;
    this.closed = true;
    this.#conn.onData = null;
    this.#conn.onClose = null;
    if (destroy) this.#conn.destroy();
    const h = this.handler;
    this.handler = null;
    this.#onClosed(this);
    h?.lost(reason ?? this.#gone());
  }

  #receive(chunk: Uint8Array): void {
    const n = chunk.length;
    let at = 0;
    while (at < n && !this.closed) {
      if (this.#partial !== null) {
        const p = this.#partial;
        const take = Math.min(p.length - this.#partialLen, n - at);
        p.set(chunk.subarray(at, at + take), this.#partialLen);
        this.#partialLen += take;
        at += take;
        if (this.#partialLen < p.length) break;
        this.#partial = null;
        this.#deliver(p[0] as number, p, 0, p.length);
        continue;
      }
      let type: number;
      let len: number;
      if (this.#headerLen > 0 || n - at < 5) {
        const take = Math.min(5 - this.#headerLen, n - at);
        this.#header.set(chunk.subarray(at, at + take), this.#headerLen);
        this.#headerLen += take;
        at += take;
        if (this.#headerLen < 5) break;
        this.#headerLen = 0;
        const h = this.#header;
        type = h[0] as number;
        len = ((h[1] as number) << 24 | (h[2] as number) << 16 | (h[3] as number) << 8 |
          (h[4] as number)) >>> 0;
        if (!this.#checkLength(type, len)) return;
        const whole = new Uint8Array(len + 1);
        whole.set(h);
        this.#partial = whole;
        this.#partialLen = 5;
        if (len === 4) {
          this.#partial = null;
          this.#deliver(type, whole, 0, 5);
        }
        continue;
      }
      type = chunk[at] as number;
      len = ((chunk[at + 1] as number) << 24 | (chunk[at + 2] as number) << 16 |
        (chunk[at + 3] as number) << 8 | (chunk[at + 4] as number)) >>> 0;
      if (!this.#checkLength(type, len)) return;
      if (at + 1 + len <= n) {
        this.#deliver(type, chunk, at, at + 1 + len);
        at += 1 + len;
      } else {
        const whole = new Uint8Array(len + 1);
        whole.set(chunk.subarray(at));
        this.#partial = whole;
        this.#partialLen = n - at;
        at = n;
      }
    }
    this.handler?.chunkEnd();
  }

  #checkLength(type: number, len: number): boolean {
    if (len >= 4 && len <= MAX_BACKEND_MESSAGE) return true;
    this.#lost(
      new PgError(
        ERRCODE.PROTOCOL_VIOLATION,
        "terminating connection because of an invalid message from the upstream server",
        {
          severity: "FATAL",
          detail: `Message type 0x${type.toString(16)} has invalid length ${len}.`,
        },
      ),
    );
    return false;
  }

  #deliver(type: number, buf: Uint8Array, start: number, end: number): void {
    if (type === BE.ReadyForQuery) {
      const s = String.fromCharCode(buf[start + 5] as number);
      this.status = s === "T" || s === "E" ? s : "I";
    } else if (type === BE.ParameterStatus) {
      const { name, value } = parseParameterStatus(buf.subarray(start + 5, end));
      this.reported.set(name, value);
    }
    this.handler?.message(type, buf, start, end);
  }
}
