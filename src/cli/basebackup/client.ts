/**
 * The connection `pgts basebackup` reads through: an ordinary client
 * connection (startup and authentication by openUpstream, as `pgts restore`
 * does), then one extended-protocol statement at a time with results in
 * binary format, so that a file's bytes arrive as they are (no hex). A
 * message is assembled from the socket's chunks once, whatever its size: a
 * 4 MB DataRow costs one copy.
 */

import type { Connection } from "../../core/adapter.ts";
import {
  BE,
  MessageWriter,
  parseDataRow,
  parseErrorResponse,
  pgErrorFromFields,
  writeBind,
  writeExecute,
  writeParse,
  writeSync,
  writeTerminate,
} from "../../core/protocol/mod.ts";
import { PgError } from "../../core/elog.ts";
import { ERRCODE } from "../../core/elog.ts";
import { dialUpstream } from "../../http/upstream.ts";
import { openUpstream } from "../../engines/upstream/connect.ts";
import { NO_SSL } from "../../engines/upstream/url.ts";
import type { ConnTarget } from "../conninfo.ts";

interface Message {
  readonly type: number;
  readonly body: Uint8Array;
}

export type Row = (Uint8Array | null)[];

export class BackupConnection {
  readonly #conn: Connection;
  readonly #chunks: Uint8Array[] = [];
  #buffered = 0;
  #closed = false;
  #wake: (() => void) | null = null;

  private constructor(conn: Connection, rest: Uint8Array) {
    this.#conn = conn;
    if (rest.length > 0) this.#push(rest);
    conn.onData = (chunk) => this.#push(chunk.slice());
    conn.onClose = () => {
      this.#closed = true;
      this.#notify();
    };
    conn.resume();
  }

  /** A connection to `database` of the target server, as `target.user`. */
  static async open(target: ConnTarget, database: string): Promise<BackupConnection> {
    const upstream = await openUpstream(
      { ...target, display: target.display, ssl: NO_SSL },
      {
        database,
        params: { application_name: "pgts basebackup" },
        timeoutMs: 30_000,
        connect: dialUpstream,
      },
    );
    return new BackupConnection(upstream.conn, upstream.rest);
  }

  #push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** The first `n` buffered bytes, taken out of the buffer. */
  #take(n: number): Uint8Array {
    const first = this.#chunks[0]!;
    let out: Uint8Array;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      out = new Uint8Array(n);
      let at = 0;
      while (at < n) {
        const c = this.#chunks[0]!;
        const k = Math.min(c.length, n - at);
        out.set(c.subarray(0, k), at);
        at += k;
        if (k === c.length) this.#chunks.shift();
        else this.#chunks[0] = c.subarray(k);
      }
    }
    this.#buffered -= n;
    return out;
  }

  #peekLength(): number {
    const head = new Uint8Array(5);
    let at = 0;
    for (const c of this.#chunks) {
      const k = Math.min(c.length, 5 - at);
      head.set(c.subarray(0, k), at);
      at += k;
      if (at === 5) break;
    }
    return new DataView(head.buffer).getInt32(1);
  }

  async #next(): Promise<Message> {
    for (;;) {
      if (this.#buffered >= 5) {
        const len = this.#peekLength();
        if (this.#buffered >= len + 1) {
          const m = this.#take(len + 1);
          return { type: m[0]!, body: m.subarray(5) };
        }
      }
      if (this.#closed) {
        throw new PgError(ERRCODE.CONNECTION_FAILURE, "server closed the connection unexpectedly", {
          severity: "FATAL",
        });
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /**
   * Runs one statement with text parameters; rows come back in binary
   * format when `binary`, else as text bytes. Rejects with the server's
   * error; the connection stays usable after one.
   */
  async query(sql: string, params: readonly string[] = [], binary = false): Promise<Row[]> {
    const enc = new TextEncoder();
    this.#conn.write(MessageWriter.encode((w) => {
      writeParse(w, { name: "", query: sql, paramTypes: [] });
      writeBind(w, {
        portal: "",
        statement: "",
        paramFormats: [],
        params: params.map((p) => enc.encode(p)),
        resultFormats: [binary ? 1 : 0],
      });
      writeExecute(w, { portal: "", maxRows: 0 });
      writeSync(w);
    }));
    const rows: Row[] = [];
    let error: PgError | null = null;
    for (;;) {
      const m = await this.#next();
      if (m.type === BE.DataRow) rows.push(parseDataRow(m.body));
      else if (m.type === BE.ErrorResponse) error = pgErrorFromFields(parseErrorResponse(m.body));
      else if (m.type === BE.ReadyForQuery) break;
    }
    if (error !== null) throw error;
    return rows;
  }

  /** The rows as strings (text format). */
  async text(sql: string, params: readonly string[] = []): Promise<(string | null)[][]> {
    const dec = new TextDecoder();
    return (await this.query(sql, params)).map((r) =>
      r.map((v) => v === null ? null : dec.decode(v))
    );
  }

  close(): void {
    if (this.#closed) return;
    this.#conn.write(MessageWriter.encode((w) => writeTerminate(w)));
    this.#conn.end();
    this.#closed = true;
  }
}
