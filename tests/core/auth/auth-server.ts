/**
 * A tiny test-only server that does startup, pg_hba.conf matching and
 * password authentication with nothing but pgts's protocol and auth modules,
 * then answers every Query with one fixed row. It exists to show that real
 * clients (psql, node-postgres) accept what those modules send; it is not the
 * pgts backend.
 */

import type { Socket, TCPSocketListener } from "bun";
import {
  type AuthStep,
  ClientAuthentication,
  type HbaLine,
  hbaRejectError,
  matchHba,
  noHbaEntryError,
} from "../../../src/core/auth/mod.ts";
import { isPgError, type PgError } from "../../../src/core/elog.ts";
import {
  FE,
  isCommError,
  MessageReader,
  MessageWriter,
  parseQuery,
  parseStartupPacket,
  writeBackendKeyData,
  writeCommandComplete,
  writeDataRow,
  writeEmptyQueryResponse,
  writeErrorResponse,
  writeNegotiateProtocolVersion,
  writeParameterStatus,
  writeReadyForQuery,
  writeRowDescription,
} from "../../../src/core/protocol/mod.ts";

interface Conn {
  reader: MessageReader;
  phase: "startup" | "auth" | "ready" | "closed";
  auth?: ClientAuthentication;
  expect?: "password" | "sasl";
  user?: string;
  queue: Promise<void>;
  pending: Uint8Array[];
}

export interface AuthServerOptions {
  hba: HbaLine[];
  /** Stored secrets by role name; a missing role has no password. */
  secrets: Record<string, string>;
}

export interface AuthServer {
  port: number;
  /** Errors the server raised, newest last (what it would log). */
  errors: PgError[];
  /** SSLRequests and GSSENCRequests answered with 'N'. */
  encryptionRequestsDeclined: number;
  stop(): void;
}

export function startAuthServer(options: AuthServerOptions): AuthServer {
  const errors: PgError[] = [];
  let declined = 0;
  const conns = new Map<Socket<Conn>, Conn>();

  const flush = (s: Socket<Conn>, c: Conn) => {
    while (c.pending.length > 0) {
      const head = c.pending[0]!;
      const n = s.write(head);
      if (n < head.length) {
        c.pending[0] = head.subarray(Math.max(n, 0));
        return;
      }
      c.pending.shift();
    }
    if (c.phase === "closed") s.end();
  };
  const send = (s: Socket<Conn>, c: Conn, bytes: Uint8Array) => {
    c.pending.push(bytes);
    flush(s, c);
  };
  const fail = (s: Socket<Conn>, c: Conn, e: unknown) => {
    if (!isPgError(e)) throw e;
    errors.push(e);
    const wasOpen = c.phase !== "closed";
    c.phase = "closed";
    if (wasOpen && !isCommError(e)) {
      send(s, c, MessageWriter.encode((w) => writeErrorResponse(w, e)));
    } else flush(s, c);
  };

  const afterAuth = (s: Socket<Conn>, c: Conn, step: AuthStep & { done: true }) => {
    const w = new MessageWriter();
    w.bytes(step.send);
    for (
      const [k, v] of [
        ["server_version", "15.0"],
        ["server_encoding", "UTF8"],
        ["client_encoding", "UTF8"],
        ["DateStyle", "ISO, MDY"],
        ["integer_datetimes", "on"],
        ["standard_conforming_strings", "on"],
        ["session_authorization", c.user ?? ""],
      ]
    ) writeParameterStatus(w, k!, v!);
    writeBackendKeyData(w, 4242, 0x12345678);
    writeReadyForQuery(w, "I");
    c.phase = "ready";
    send(s, c, w.take());
  };

  const pump = async (s: Socket<Conn>, c: Conn) => {
    while (c.phase !== "closed") {
      if (c.phase === "startup") {
        const body = c.reader.readStartupPacket();
        if (body === null) return;
        const p = parseStartupPacket(body);
        if (p.kind === "ssl" || p.kind === "gssenc") {
          declined++;
          send(s, c, new Uint8Array([0x4e])); // 'N'
          continue;
        }
        if (p.kind === "cancel") {
          c.phase = "closed";
          flush(s, c);
          return;
        }
        c.user = p.user;
        if (p.negotiate !== null) {
          const n = p.negotiate;
          send(
            s,
            c,
            MessageWriter.encode((w) =>
              writeNegotiateProtocolVersion(w, n.version, n.unrecognizedOptions)
            ),
          );
        }
        const who = { host: s.remoteAddress, user: p.user, database: p.database };
        const line = await matchHba(options.hba, {
          type: "host",
          address: s.remoteAddress,
          ...who,
        });
        if (line === null) throw noHbaEntryError(who);
        if (line.method === "reject") throw hbaRejectError(who);
        c.auth = new ClientAuthentication({
          method: line.method,
          user: p.user,
          secret: options.secrets[p.user] ?? null,
        });
        const step = await c.auth.start();
        if (step.done) afterAuth(s, c, step);
        else {
          c.phase = "auth";
          c.expect = step.expect;
          send(s, c, step.send);
        }
      } else if (c.phase === "auth") {
        const body = c.reader.readAuthResponse(c.expect);
        if (body === null) return;
        const step = await c.auth!.receive(body);
        if (step.done) afterAuth(s, c, step);
        else {
          c.expect = step.expect;
          send(s, c, step.send);
        }
      } else {
        const m = c.reader.read();
        if (m === null) return;
        if (m.type === FE.Terminate) {
          c.phase = "closed";
          flush(s, c);
          return;
        }
        if (m.type !== FE.Query) continue;
        const sql = parseQuery(m.body);
        const w = new MessageWriter();
        if (sql.trim() === "") writeEmptyQueryResponse(w);
        else {
          writeRowDescription(w, [{ name: "greeting", typeOid: 25 }, {
            name: "n",
            typeOid: 23,
            typeSize: 4,
          }]);
          writeDataRow(w, ["hello", "42"]);
          writeCommandComplete(w, "SELECT 1");
        }
        writeReadyForQuery(w, "I");
        send(s, c, w.take());
      }
    }
  };

  const listener: TCPSocketListener<Conn> = Bun.listen<Conn>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        const c: Conn = {
          reader: new MessageReader(),
          phase: "startup",
          queue: Promise.resolve(),
          pending: [],
        };
        s.data = c;
        conns.set(s, c);
      },
      data(s, chunk) {
        const c = s.data;
        c.reader.push(new Uint8Array(chunk)); // a copy: the reader keeps chunks
        c.queue = c.queue.then(() => pump(s, c)).catch((e) => fail(s, c, e));
      },
      drain(s) {
        flush(s, s.data);
      },
      close(s) {
        const err = s.data.reader.eof();
        if (err !== null) errors.push(err);
        conns.delete(s);
      },
      error(s) {
        conns.delete(s);
      },
    },
  });

  return {
    port: listener.port,
    errors,
    get encryptionRequestsDeclined() {
      return declined;
    },
    stop() {
      for (const s of conns.keys()) s.terminate();
      listener.stop(true);
    },
  };
}
