/**
 * The wire floor: a Bun server that speaks just enough of the protocol for
 * pgbench and the bench's client, with no engine and no sessions. Every
 * simple Query is answered at once with one canned row; a login is
 * answered with AuthenticationOk, a few ParameterStatus, BackendKeyData
 * and ReadyForQuery. What it reaches is what the runtime's sockets,
 * loopback and the client itself allow on this machine, before a server
 * does any work: the bench (compare.ts) runs it beside the real servers on
 * the connection and `SELECT 1` tests, so that a target above it can be
 * told from one a server fails.
 *
 *   bun scripts/bench/floor.ts PORT
 *
 * pgbench's two questions before a built-in script (the scale, and whether
 * pgbench_accounts is partitioned) are answered as a scale-1 unpartitioned
 * database would. Anything but a simple Query or Terminate after the login
 * (the extended protocol) closes the connection.
 */

import { bunApi } from "../../src/adapters/bun/net.ts";
import { BE, FE } from "../../src/core/protocol/constants.ts";

const PROTOCOL_3_0 = 196608;
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;

const enc = new TextEncoder();
const dec = new TextDecoder();

function message(type: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + body.length);
  out[0] = type;
  new DataView(out.buffer).setInt32(1, 4 + body.length);
  out.set(body, 5);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** RowDescription, one DataRow (null: SQL NULL), CommandComplete and ReadyForQuery. */
function answer(values: (string | null)[]): Uint8Array {
  const names = values.map((_, i) => enc.encode(`c${i}\0`));
  const desc = new Uint8Array(2 + names.reduce((n, b) => n + b.length + 18, 0));
  const dv = new DataView(desc.buffer);
  dv.setInt16(0, values.length);
  let at = 2;
  for (const name of names) {
    desc.set(name, at);
    at += name.length;
    dv.setInt32(at, 0); // table oid
    dv.setInt16(at + 4, 0); // column number
    dv.setInt32(at + 6, 25); // text
    dv.setInt16(at + 10, -1);
    dv.setInt32(at + 12, -1);
    dv.setInt16(at + 16, 0); // text format
    at += 18;
  }
  const cells = values.map((v) => (v === null ? null : enc.encode(v)));
  const row = new Uint8Array(2 + cells.reduce((n, c) => n + 4 + (c?.length ?? 0), 0));
  const rv = new DataView(row.buffer);
  rv.setInt16(0, values.length);
  at = 2;
  for (const c of cells) {
    rv.setInt32(at, c === null ? -1 : c.length);
    at += 4;
    if (c !== null) {
      row.set(c, at);
      at += c.length;
    }
  }
  return concat([
    message(BE.RowDescription, desc),
    message(BE.DataRow, row),
    message(BE.CommandComplete, enc.encode("SELECT 1\0")),
    message(BE.ReadyForQuery, enc.encode("I")),
  ]);
}

const parameterStatus = (name: string, value: string) =>
  message(BE.ParameterStatus, enc.encode(`${name}\0${value}\0`));
const LOGIN = concat([
  message(BE.AuthenticationRequest, new Uint8Array(4)),
  parameterStatus("server_version", "18.0"),
  parameterStatus("server_encoding", "UTF8"),
  parameterStatus("client_encoding", "UTF8"),
  parameterStatus("DateStyle", "ISO, MDY"),
  parameterStatus("integer_datetimes", "on"),
  parameterStatus("standard_conforming_strings", "on"),
  parameterStatus("TimeZone", "UTC"),
  message(BE.BackendKeyData, new Uint8Array(8)),
  message(BE.ReadyForQuery, enc.encode("I")),
]);
const ONE = answer(["1"]);
/** pgbench's partition question: found, not partitioned, no partitions. */
const NOT_PARTITIONED = answer(["1", null, "0"]);
const REFUSE_ENCRYPTION = enc.encode("N");

interface Conn {
  loggedIn: boolean;
  pending: Uint8Array | null;
}

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: bun scripts/bench/floor.ts PORT");
  process.exit(2);
}

bunApi().listen<Conn>({
  hostname: "127.0.0.1",
  port,
  socket: {
    open(socket) {
      socket.data = { loggedIn: false, pending: null };
    },
    data(socket, chunk) {
      const conn = socket.data;
      let buf: Uint8Array = conn.pending === null ? chunk : concat([conn.pending, chunk]);
      conn.pending = null;
      for (;;) {
        const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
        if (!conn.loggedIn) {
          if (buf.length < 8) break;
          const length = view.getInt32(0);
          if (length < 8) { // not a startup packet at all
            socket.end();
            return;
          }
          if (buf.length < length) break;
          const code = view.getInt32(4);
          buf = buf.subarray(length);
          if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
            socket.write(REFUSE_ENCRYPTION);
            continue;
          }
          if (code !== PROTOCOL_3_0) { // a CancelRequest, or a protocol it does not speak
            socket.end();
            return;
          }
          conn.loggedIn = true;
          socket.write(LOGIN);
          continue;
        }
        if (buf.length < 5) break;
        const length = view.getInt32(1);
        if (length < 4) { // a broken frame
          socket.end();
          return;
        }
        if (buf.length < 1 + length) break;
        const type = buf[0];
        const body = buf.subarray(5, 1 + length);
        buf = buf.subarray(1 + length);
        if (type === FE.Query) {
          const asksPartitions = dec.decode(body).includes("partstrat");
          socket.write(asksPartitions ? NOT_PARTITIONED : ONE);
        } else {
          socket.end(); // Terminate, or the extended protocol
          return;
        }
      }
      if (buf.length > 0) conn.pending = buf.slice();
    },
  },
});
console.log(`FLOOR_PID=${process.pid}`);
