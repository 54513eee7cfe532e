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
import {
  concatBytes,
  ENCRYPTION_REFUSED,
  FE,
  MessageWriter,
  NEGOTIATE_GSS_CODE,
  NEGOTIATE_SSL_CODE,
  PG_PROTOCOL_EARLIEST,
  writeAuthenticationOk,
  writeBackendKeyData,
  writeCommandComplete,
  writeDataRow,
  writeParameterStatus,
  writeReadyForQuery,
  writeRowDescription,
} from "../../src/core/protocol/mod.ts";

const dec = new TextDecoder();

/** RowDescription (text columns), one DataRow (null: SQL NULL), CommandComplete and ReadyForQuery. */
const answer = (values: (string | null)[]) =>
  MessageWriter.encode((w) => {
    writeRowDescription(w, values.map((_, i) => ({ name: `c${i}`, typeOid: 25 })));
    writeDataRow(w, values);
    writeCommandComplete(w, "SELECT 1");
    writeReadyForQuery(w, "I");
  });

/** The ParameterStatus a login reports (those clients read). */
const REPORTED: readonly (readonly [string, string])[] = [
  ["server_version", "18.0"],
  ["server_encoding", "UTF8"],
  ["client_encoding", "UTF8"],
  ["DateStyle", "ISO, MDY"],
  ["integer_datetimes", "on"],
  ["standard_conforming_strings", "on"],
  ["TimeZone", "UTC"],
];
const LOGIN = MessageWriter.encode((w) => {
  writeAuthenticationOk(w);
  for (const [name, value] of REPORTED) writeParameterStatus(w, name, value);
  writeBackendKeyData(w, 0, 0);
  writeReadyForQuery(w, "I");
});
const ONE = answer(["1"]);
/** pgbench's partition question: found, not partitioned, no partitions. */
const NOT_PARTITIONED = answer(["1", null, "0"]);
const REFUSE_ENCRYPTION = Uint8Array.of(ENCRYPTION_REFUSED);

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
      let buf: Uint8Array = conn.pending === null ? chunk : concatBytes([conn.pending, chunk]);
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
          if (code === NEGOTIATE_SSL_CODE || code === NEGOTIATE_GSS_CODE) {
            socket.write(REFUSE_ENCRYPTION);
            continue;
          }
          if (code !== PG_PROTOCOL_EARLIEST) { // a CancelRequest, or a protocol it does not speak
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
