/**
 * A test-only server in front of an `Engine`: Bun.listen on port 0, trust
 * authentication, one engine session per connection. It answers SSLRequest
 * with 'N', maps CancelRequest (pid + key) to `session.cancel()`, answers a
 * startup with AuthenticationOk, the engine's ParameterStatus list,
 * BackendKeyData and ReadyForQuery, then passes every complete framed
 * message to the session's `exec`, one call at a time. It exists so the
 * engine can be driven by real clients (pg, postgres.js, psql) before the
 * real backend is wired to it; it is not the pgts server.
 */

import type { Socket } from "bun";
import type { Engine, EngineSession } from "../../src/core/engine/types.ts";
import { isPgError } from "../../src/core/elog.ts";
import {
  MessageWriter,
  writeAuthenticationOk,
  writeBackendKeyData,
  writeErrorResponse,
  writeParameterStatus,
  writeReadyForQuery,
} from "../../src/core/protocol/mod.ts";
import { PgError } from "../../src/core/elog.ts";
import type { ExecutorOptions, RawExecutor } from "../../src/engines/pglite/executor.ts";
import { memoryImage } from "../../src/engines/pglite/cluster.ts";
import { startExecutor } from "../../src/engines/pglite/placement.ts";

interface Conn {
  buf: Uint8Array;
  started: boolean;
  starting: boolean;
  session: EngineSession | null;
  pid: number;
  key: number;
  chain: Promise<void>;
  pending: Uint8Array[];
  closed: boolean;
}

export interface EngineServer {
  readonly port: number;
  /** Backend pids of open connections. */
  readonly pids: number[];
  stop(): Promise<void>;
}

let nextPid = 20000 + Math.floor(Math.random() * 10000);

export function startEngineServer(engine: Engine): EngineServer {
  const conns = new Map<Socket<Conn>, Conn>();
  const byPid = new Map<number, Conn>();

  const send = (sock: Socket<Conn>, c: Conn, bytes: Uint8Array) => {
    if (c.closed) return;
    if (c.pending.length > 0) {
      c.pending.push(bytes.slice());
      return;
    }
    const n = sock.write(bytes);
    if (n < bytes.length) c.pending.push(bytes.slice(Math.max(0, n)));
  };
  const end = (sock: Socket<Conn>, c: Conn) => {
    c.closed = true;
    sock.end();
  };

  const onStartup = async (sock: Socket<Conn>, c: Conn, packet: Uint8Array) => {
    const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
    const code = view.getInt32(4);
    if (code === 80877103 || code === 80877104) {
      sock.write(Uint8Array.of(0x4e)); // no SSL, no GSS
      return;
    }
    if (code === 80877102) {
      const target = byPid.get(view.getInt32(8));
      if (target !== undefined && target.key === view.getInt32(12)) target.session?.cancel();
      end(sock, c);
      return;
    }
    const fields = new TextDecoder().decode(packet.subarray(8)).split("\0");
    const params: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length && fields[i] !== ""; i += 2) {
      params[fields[i]!] = fields[i + 1]!;
    }
    const user = params["user"] ?? "postgres";
    const database = params["database"] ?? user;
    delete params["user"];
    delete params["database"];
    c.pid = nextPid++;
    c.key = crypto.getRandomValues(new Int32Array(1))[0]!;
    try {
      const { session, parameterStatus } = await engine.startSession({
        pid: c.pid,
        user,
        database,
        params,
      });
      c.session = session;
      byPid.set(c.pid, c);
      session.onAsync = (b) => send(sock, c, b);
      session.onTerminate = () => end(sock, c);
      const w = new MessageWriter();
      writeAuthenticationOk(w);
      for (const [n, v] of parameterStatus) writeParameterStatus(w, n, v);
      writeBackendKeyData(w, c.pid, c.key);
      writeReadyForQuery(w, "I");
      send(sock, c, w.take());
      c.started = true;
    } catch (e) {
      const err = isPgError(e) ? e : new PgError("XX000", String(e), { severity: "FATAL" });
      send(sock, c, MessageWriter.encode((w) => writeErrorResponse(w, err)));
      end(sock, c);
    }
  };

  const pump = (sock: Socket<Conn>, c: Conn) => {
    for (;;) {
      if (!c.started) {
        if (c.starting || c.buf.length < 4) return;
        const len = new DataView(c.buf.buffer, c.buf.byteOffset).getInt32(0);
        if (c.buf.length < len) return;
        const packet = c.buf.slice(0, len);
        c.buf = c.buf.slice(len);
        c.starting = true;
        c.chain = c.chain.then(() => onStartup(sock, c, packet)).finally(() => {
          c.starting = false;
        });
        // The next bytes may only be read once the startup is answered.
        c.chain = c.chain.then(() => pump(sock, c));
        return;
      }
      let at = 0;
      let terminate = false;
      while (c.buf.length - at >= 5) {
        const len = new DataView(c.buf.buffer, c.buf.byteOffset + at + 1).getInt32(0);
        if (c.buf.length - at < 1 + len) break;
        if (c.buf[at] === 0x58) terminate = true;
        at += 1 + len;
      }
      if (at === 0) return;
      const batch = c.buf.slice(0, at);
      c.buf = c.buf.slice(at);
      const session = c.session!;
      c.chain = c.chain.then(async () => {
        try {
          await session.exec(batch, (b) => send(sock, c, b));
        } catch (e) {
          if (isPgError(e)) send(sock, c, MessageWriter.encode((w) => writeErrorResponse(w, e)));
          end(sock, c);
        }
        if (terminate) end(sock, c);
      });
      return;
    }
  };

  const server = Bun.listen<Conn>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(sock) {
        const c: Conn = {
          buf: new Uint8Array(0),
          started: false,
          starting: false,
          session: null,
          pid: 0,
          key: 0,
          chain: Promise.resolve(),
          pending: [],
          closed: false,
        };
        sock.data = c;
        conns.set(sock, c);
        sock.setNoDelay(true);
      },
      data(sock, chunk) {
        const c = sock.data;
        const b = new Uint8Array(c.buf.length + chunk.length);
        b.set(c.buf);
        b.set(chunk, c.buf.length);
        c.buf = b;
        pump(sock, c);
      },
      drain(sock) {
        const c = sock.data;
        while (c.pending.length > 0) {
          const head = c.pending[0]!;
          const n = sock.write(head);
          if (n < head.length) {
            c.pending[0] = head.slice(Math.max(0, n));
            return;
          }
          c.pending.shift();
        }
      },
      close(sock) {
        const c = sock.data;
        c.closed = true;
        conns.delete(sock);
        byPid.delete(c.pid);
        void c.session?.close();
      },
      error() {},
    },
  });

  return {
    port: server.port,
    get pids() {
      return [...byPid.keys()];
    },
    async stop() {
      server.stop(true);
      await Promise.all([...conns.values()].map((c) => c.session?.close()));
    },
  };
}

/**
 * An executor on a memory:// cluster started from the cluster image, as
 * openEngine starts one without an executor of its own (PGlite's initdb
 * took 6–9 s a start under CI's load).
 */
export async function startMemoryExecutor(options: ExecutorOptions = {}): Promise<RawExecutor> {
  const image = await memoryImage();
  return await startExecutor("memory://", image === null ? options : { ...options, image });
}
