/**
 * inet_client_addr(), inet_client_port(), inet_server_addr() and
 * inet_server_port() as PostgreSQL answers them: the session's client and
 * the server's end of its TCP connection, NULL over a Unix socket.
 *
 * PostgreSQL reads them from the backend's Port (`MyProcPort->raddr` and
 * `laddr`). PGlite's one backend has a Port of its own with a remote
 * address of 127.0.0.1:5432 and no local one, whoever the session is. So
 * before an exec of a session whose address differs from what the Port
 * holds, the session's addresses are written there, as `struct sockaddr`s
 * of PGlite's C library (musl: AF_INET 2, AF_INET6 10, AF_UNIX 1); a
 * session without a TCP address gets AF_UNIX, for which PostgreSQL returns
 * NULL. Installed only when the Port's layout is the one expected (its
 * remote address read back as 127.0.0.1:5432 at the offset assumed).
 */

import { parseIp } from "../../core/auth/inet.ts";
import type { BackendTable } from "./backends.ts";

/** Offsets in wasm32 `struct Port` (libpq/libpq-be.h): sock, noblock, proto, then laddr and raddr. */
const PORT_LADDR = 12;
const PORT_RADDR = 144;
/** `SockAddr` = `struct sockaddr_storage` (128 bytes) and its `salen`. */
const SOCKADDR_SALEN = 128;
const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;

/** The addresses written into PGlite's Port, per session. */
export class ClientAddresses {
  readonly #memory: WebAssembly.Memory;
  readonly #port: number;
  readonly #sessions: BackendTable;
  /** Whose addresses the Port holds now (undefined: PGlite's own). */
  #current: number | null | undefined = undefined;

  private constructor(memory: WebAssembly.Memory, port: number, sessions: BackendTable) {
    this.#memory = memory;
    this.#port = port;
    this.#sessions = sessions;
  }

  /**
   * For `myProcPort` (the exported `MyProcPort` variable): null when there
   * is none, or when its Port does not hold 127.0.0.1:5432 where expected.
   */
  static install(
    memory: WebAssembly.Memory,
    myProcPort: unknown,
    sessions: BackendTable,
  ): ClientAddresses | null {
    if (!(myProcPort instanceof WebAssembly.Global)) return null;
    const view = new DataView(memory.buffer);
    const port = view.getUint32(myProcPort.value as number, true);
    if (port === 0) return null;
    const r = port + PORT_RADDR;
    const ok = view.getUint16(r, true) === AF_INET && view.getUint16(r + 2, false) === 5432 &&
      view.getUint32(r + 4, false) === 0x7f000001;
    return ok ? new ClientAddresses(memory, port, sessions) : null;
  }

  /** The sessions changed (a pid may be another session's now): the next exec's are written again. */
  sessionsChanged(): void {
    this.#current = undefined;
  }

  /** Before an exec of session `pid` (null: pgts's own work, which reads no address). */
  use(pid: number | null): void {
    if (pid === null || pid === this.#current) return;
    const client = this.#sessions.get(pid)?.client ?? null;
    const view = new DataView(this.#memory.buffer);
    write(view, this.#port + PORT_RADDR, client);
    write(view, this.#port + PORT_LADDR, client?.local ?? null);
    this.#current = pid;
  }
}

/** One SockAddr: the address as its sockaddr, or AF_UNIX for none. */
function write(
  view: DataView,
  at: number,
  addr: { readonly address: string; readonly port: number } | null,
): void {
  const ip = addr === null ? null : parseIp(addr.address);
  for (let i = 0; i < SOCKADDR_SALEN; i += 4) view.setUint32(at + i, 0);
  if (addr === null || ip === null) {
    view.setUint16(at, AF_UNIX, true);
    view.setUint32(at + SOCKADDR_SALEN, 2, true);
    return;
  }
  if (ip.family === 4) {
    view.setUint16(at, AF_INET, true);
    view.setUint16(at + 2, addr.port, false);
    for (let i = 0; i < 4; i++) view.setUint8(at + 4 + i, ip.bytes[i]!);
    view.setUint32(at + SOCKADDR_SALEN, 16, true);
  } else {
    view.setUint16(at, AF_INET6, true);
    view.setUint16(at + 2, addr.port, false);
    for (let i = 0; i < 16; i++) view.setUint8(at + 8 + i, ip.bytes[i]!);
    view.setUint32(at + SOCKADDR_SALEN, 28, true);
  }
}
