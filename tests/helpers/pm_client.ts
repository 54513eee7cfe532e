/**
 * A tiny frontend for postmaster tests over in-memory sockets: sends a
 * startup packet and simple queries, reads backend messages. Real clients
 * (psql, node-postgres) are for the end-to-end tests; this one speaks to
 * test_backend.ts's backends and the postmaster's dead-ends in-process.
 */

import type { Connection } from "../../src/core/adapter.ts";
import { ConnectionReader } from "../../src/core/protocol/connreader.ts";
import { parseErrorResponse } from "../../src/core/protocol/backend-reader.ts";

/** A backend message, its type as a character ('Z', 'E'...). */
export interface Message {
  readonly type: string;
  readonly body: Uint8Array;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function startupPacket(params: Record<string, string>): Uint8Array {
  const body = enc.encode(
    Object.entries(params).map(([k, v]) => `${k}\0${v}\0`).join("") + "\0",
  );
  const out = new Uint8Array(8 + body.length);
  const view = new DataView(out.buffer);
  view.setInt32(0, out.length);
  view.setInt32(4, 196608); // protocol 3.0
  out.set(body, 8);
  return out;
}

export function sslRequest(): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setInt32(0, 8);
  new DataView(out.buffer).setInt32(4, 80877103);
  return out;
}

function frontendMessage(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + body.length);
  out[0] = type.charCodeAt(0);
  new DataView(out.buffer).setInt32(1, 4 + body.length);
  out.set(body, 5);
  return out;
}

export interface Report {
  readonly type: "E" | "N";
  readonly severity: string;
  readonly code: string;
  readonly message: string;
  readonly detail?: string;
}

export function asReport(m: Message): Report | null {
  if (m.type !== "E" && m.type !== "N") return null;
  const f = parseErrorResponse(m.body);
  return {
    type: m.type,
    severity: f.severityV ?? f.severity,
    code: f.code,
    message: f.message,
    ...(f.detail === undefined ? {} : { detail: f.detail }),
  };
}

export class TestClient {
  readonly conn: Connection;
  readonly reader: ConnectionReader;
  closed = false;

  constructor(conn: Connection) {
    this.conn = conn;
    this.reader = new ConnectionReader(conn);
    const prev = conn.onClose;
    conn.onClose = () => {
      this.closed = true;
      prev?.();
    };
  }

  async #readMessage(): Promise<Message | null> {
    const m = await this.reader.readMessage();
    return m === null ? null : { type: String.fromCharCode(m.type), body: m.body };
  }

  /** Sends the startup packet; resolves with the messages up to ReadyForQuery, an error or close. */
  async startup(params: Record<string, string> = { user: "postgres" }): Promise<Message[]> {
    this.conn.write(startupPacket(params));
    return await this.readUntilReady();
  }

  async readUntilReady(): Promise<Message[]> {
    const out: Message[] = [];
    for (;;) {
      const m = await this.#readMessage();
      if (m === null) return out;
      out.push(m);
      if (m.type === "Z" || m.type === "E") return out;
    }
  }

  async query(sql: string): Promise<Message[]> {
    this.conn.write(frontendMessage("Q", enc.encode(sql + "\0")));
    return await this.readUntilReady();
  }

  /** Every message until the server closes the connection. */
  async readUntilClose(): Promise<Message[]> {
    const out: Message[] = [];
    for (;;) {
      const m = await this.#readMessage();
      if (m === null) return out;
      out.push(m);
    }
  }

  terminate(): void {
    this.conn.write(frontendMessage("X", new Uint8Array(0)));
    this.conn.end();
  }
}

/** The value in the first DataRow of a query's reply. */
export function firstValue(messages: Message[]): string | null {
  const row = messages.find((m) => m.type === "D");
  if (row === undefined) return null;
  const view = new DataView(row.body.buffer, row.body.byteOffset, row.body.byteLength);
  const len = view.getInt32(2);
  return dec.decode(row.body.subarray(6, 6 + len));
}

export function reports(messages: Message[]): Report[] {
  return messages.map(asReport).filter((r): r is Report => r !== null);
}
