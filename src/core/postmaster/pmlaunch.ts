/**
 * The postmaster's hands on its children (PostgreSQL's launch_backend.c and
 * signal_child): launching a child through the adapter's ChildLauncher,
 * wiring its exit and messages back into the server loop as events, sending
 * it signals, and serving dead-end clients.
 *
 * It decides nothing: which child to start and when, and what an exit
 * means, is the postmaster's business. Every signal to a child goes through
 * `signalChild`, which also sends the quit reason just before a SIGQUIT, so
 * that a backend can tell its client why it is being dropped. The backends'
 * cancel keys are kept on their entries here, and a CancelRequest is judged
 * against them (`processCancelRequest`), whatever front end read it.
 */

import { ereport, type PgError } from "../elog.ts";
import { TRIVIAL_STARTUP_ENTRY } from "./auxmains.ts";
import { backendTypeDesc, SIGNAL_NUMBERS } from "./backendtype.ts";
import type { BackgroundWorkerSpec } from "./bgworker.ts";
import { type CACState, rejectionFor, serveDeadEnd } from "./deadend.ts";
import { bytesToParam, replaying } from "./firstpacket.ts";
import type { SslServer } from "../backend/secure.ts";
import type {
  AcceptedConnection,
  ChildEntry,
  ChildLauncher,
  ChildProcess,
  ChildStartInfo,
  Connection,
  ListenAddress,
  Listener,
  NetAdapter,
  Signal,
} from "../adapter.ts";
import { type BackendTypeMask, type ChildRegistry, type PMChild } from "./pmchild.ts";
import type { CancelRequestMessage, PostmasterToChild } from "./pmsignal.ts";
import type { PMEvent, QuitSignalReason } from "./pmstate.ts";
import { encodeForkFailure } from "../protocol/backend.ts";

const LOG = { category: "postmaster" } as const;

/** What each child kind runs. Only `backend` is required. */
export interface PostmasterEntries {
  readonly backend: ChildEntry;
  /** Defaults to a startup process with nothing to do. */
  readonly startup?: ChildEntry;
  readonly engine?: ChildEntry;
  readonly checkpointer?: ChildEntry;
  readonly logger?: ChildEntry;
  readonly stats?: ChildEntry;
  readonly autovacuumLauncher?: ChildEntry;
  /** PgArchiver: started while archive_mode is not off. */
  readonly archiver?: ChildEntry;
}

/** The `params` of every child the postmaster starts (workers also get `bgworker`). */
/** What the postmaster read of a client before starting its backend, and when it accepted it. */
export interface FirstPacket {
  readonly bytes: Uint8Array;
  readonly acceptedAt: number;
}

export interface PMChildParams {
  readonly shared: unknown;
  /**
   * For a backend: when the postmaster took its client (ms since the
   * epoch). authentication_timeout runs from there, not from the backend's
   * start, which a flood of connections can delay by seconds.
   */
  readonly acceptedAt?: number;
  /**
   * For a backend: what the postmaster read of its client before starting
   * it (the first packet; firstpacket.ts), as char codes 0–255. The backend
   * reads these before the socket (`backendClient`).
   */
  readonly clientBytes?: string;
  readonly bgworker?: BackgroundWorkerSpec;
}

/** The singleton children, started by the postmaster on its own initiative. */
export type AuxKind =
  | "startup"
  | "engine"
  | "checkpointer"
  | "logger"
  | "stats"
  | "autovac_launcher"
  | "archiver";

export interface LaunchExtras {
  readonly client?: AcceptedConnection;
  readonly params: unknown;
}

export class PostmasterChildren {
  readonly registry: ChildRegistry;
  #launcher: ChildLauncher;
  #entries: PostmasterEntries;
  #childParams: unknown;
  #enqueue: (ev: PMEvent) => void;
  #deadEnds = new Map<number, AbortController>();
  #quitSent = new Set<number>();
  /** Backends signalled for a CancelRequest → the children that read it, waiting for "cancel-seen". */
  #cancelReaders = new Map<number, number[]>();
  #sslServer: () => SslServer | null;
  /** Sent to each child just before SIGQUIT (PostgreSQL's SetQuitSignalReason). */
  quitReason: QuitSignalReason | null = null;

  constructor(
    registry: ChildRegistry,
    options: {
      launcher: ChildLauncher;
      entries: PostmasterEntries;
      childParams: unknown;
      enqueue: (ev: PMEvent) => void;
      sslServer?: () => SslServer | null;
    },
  ) {
    this.#sslServer = options.sslServer ?? (() => null);
    this.registry = registry;
    this.#launcher = options.launcher;
    this.#entries = options.entries;
    this.#childParams = options.childParams;
    this.#enqueue = options.enqueue;
  }

  /**
   * Starts the child whose slot is already assigned. On failure the slot is
   * released and false returned; the caller reports it the way its kind
   * requires.
   */
  async launch(child: PMChild, entry: ChildEntry, extras: LaunchExtras): Promise<boolean> {
    const info: ChildStartInfo = {
      kind: child.kind,
      name: child.name,
      entry,
      params: extras.params,
      ...(extras.client === undefined ? {} : { client: extras.client }),
    };
    let proc;
    try {
      proc = await this.#launcher.launch(info);
    } catch (e) {
      this.registry.release(child);
      ereport("LOG", `could not fork ${backendTypeDesc(child.kind)} process: ${errText(e)}`, LOG);
      return false;
    }
    this.adopt(child, proc);
    return true;
  }

  /**
   * Takes charge of a running child in an assigned slot: its messages and
   * its exit reach the server loop as events. Launched children come here,
   * and so do in-process backend runs, whose "process" the caller supplies.
   */
  adopt(child: PMChild, proc: ChildProcess): void {
    child.pid = proc.pid;
    child.proc = proc;
    const pid = proc.pid;
    proc.onMessage = (message) => this.#enqueue({ type: "child-message", pid, message });
    // The launcher promises `exited` resolves; a rejection would be its bug,
    // and the safest reading of it is that the child is gone, violently.
    proc.exited.then(
      (exit) => this.#enqueue({ type: "child-exit", pid, exit }),
      () => this.#enqueue({ type: "child-exit", pid, exit: { code: null, signal: "SIGKILL" } }),
    );
  }

  #auxEntry(kind: AuxKind): ChildEntry | undefined {
    switch (kind) {
      case "startup":
        return this.#entries.startup ?? TRIVIAL_STARTUP_ENTRY;
      case "engine":
        return this.#entries.engine;
      case "checkpointer":
        return this.#entries.checkpointer;
      case "logger":
        return this.#entries.logger;
      case "stats":
        return this.#entries.stats;
      case "autovac_launcher":
        return this.#entries.autovacuumLauncher;
      case "archiver":
        return this.#entries.archiver;
      default: {
        const never: never = kind;
        throw new TypeError(`Unknown auxiliary kind: ${String(never)}`);
      }
    }
  }

  /** Whether the caller gave this kind something to run. */
  hasEntry(kind: AuxKind): boolean {
    return this.#auxEntry(kind) !== undefined;
  }

  /** StartChildProcess: null if it has no entry, its slot is taken, or the launch failed. */
  async startAux(kind: AuxKind): Promise<PMChild | null> {
    const entry = this.#auxEntry(kind);
    if (entry === undefined) return null;
    const child = this.registry.assignSlot(kind, backendTypeDesc(kind));
    if (child === null) return null;
    const params: PMChildParams = { shared: this.#childParams };
    return (await this.launch(child, entry, { params })) ? child : null;
  }

  /**
   * BackendStartup, once the postmaster has judged the cluster state: launch
   * a backend for the client in a free slot, or turn it away (no slot left:
   * "sorry, too many clients already").
   */
  async backendStartup(
    conn: AcceptedConnection,
    options: { cac: CACState; timeoutMs: number; first?: FirstPacket },
  ): Promise<void> {
    let cac = options.cac;
    const first = options.first;
    const acceptedAt = first?.acceptedAt ?? Date.now();
    const child = cac === "CAC_OK" ? this.registry.assignSlot("backend", "client backend") : null;
    if (cac === "CAC_OK" && child === null) cac = "CAC_TOOMANY";
    if (cac !== "CAC_OK" || child === null) {
      this.startDeadEnd(
        first === undefined ? conn : replaying(conn, first.bytes),
        rejectionFor(cac as Exclude<CACState, "CAC_OK">),
        options.timeoutMs - (Date.now() - acceptedAt),
      );
      return;
    }
    const params: PMChildParams = {
      shared: this.#childParams,
      acceptedAt,
      ...(first !== undefined ? { clientBytes: bytesToParam(first.bytes) } : {}),
    };
    if (!(await this.launch(child, this.#entries.backend, { client: conn, params }))) {
      // Nobody is there to speak the protocol: report_fork_failure_to_client.
      conn.write(encodeForkFailure("the child launcher failed"));
      conn.end();
    }
  }

  /** signal_child: the only way a signal reaches a child. */
  signalChild(child: PMChild, sig: Signal): void {
    if (child.kind === "dead_end_backend") {
      // Served inside the postmaster: any stop signal just drops the client.
      if (sig === "SIGTERM" || sig === "SIGQUIT" || sig === "SIGKILL" || sig === "SIGABRT") {
        this.#deadEnds.get(child.id)?.abort();
      }
      return;
    }
    if (child.proc === null) return;
    if (sig === "SIGQUIT" || sig === "SIGKILL" || sig === "SIGABRT") this.#quitSent.add(child.id);
    if (sig === "SIGQUIT" && this.quitReason !== null) {
      const msg: PostmasterToChild = { pgts: "pmquit", reason: this.quitReason };
      child.proc.post(msg);
    }
    ereport(
      "DEBUG3",
      `sending signal ${SIGNAL_NUMBERS[sig]} to ${
        backendTypeDesc(child.kind)
      } process with pid ${child.pid}`,
      LOG,
    );
    try {
      child.proc.signal(sig);
    } catch (e) {
      ereport("DEBUG1", `kill(${child.pid},${SIGNAL_NUMBERS[sig]}) failed: ${errText(e)}`, LOG);
    }
  }

  /**
   * processCancelRequest: a CancelRequest that `from` read, honoured only
   * with the key of a backend that is still there. The reader is told once
   * the signal has gone: it closes the request's connection only then, so
   * a client that waits for that close before its next query (as libpq's
   * PQcancel does) never has the next query overtake the cancel. A request
   * that matches nothing gets no answer, as in PostgreSQL.
   */
  processCancelRequest(from: PMChild, request: CancelRequestMessage): void {
    const target = this.registry.findByPid(request.pid);
    if (target === undefined || target.kind !== "backend") {
      ereport("LOG", `PID ${request.pid} in cancel request did not match any process`, LOG);
      return;
    }
    if (target.cancelKey !== request.key) {
      ereport("LOG", `wrong key in cancel request for process ${request.pid}`, LOG);
      return;
    }
    this.cancelBackend(target, from.pid);
  }

  /**
   * Sends `target` a SIGINT for a CancelRequest that the child `readerPid`
   * read. The reader is told once the target says it took the signal in
   * (its "cancel-seen"), or is gone: a child's handler runs when its event
   * loop gets to it, possibly after it read the client's next query, which
   * the cancel must not reach.
   */
  cancelBackend(target: PMChild, readerPid: number): void {
    const waiting = this.#cancelReaders.get(target.pid);
    if (waiting === undefined) this.#cancelReaders.set(target.pid, [readerPid]);
    else waiting.push(readerPid);
    this.signalChild(target, "SIGINT");
  }

  /** `target` took a SIGINT in, or exited: the readers of cancels for it may close. */
  cancelSeen(target: PMChild): void {
    const readers = this.#cancelReaders.get(target.pid);
    if (readers === undefined) return;
    this.#cancelReaders.delete(target.pid);
    const done: PostmasterToChild = { pgts: "cancel-done" };
    for (const pid of readers) this.registry.findByPid(pid)?.proc?.post(done);
  }

  /** SignalChildren: every child whose kind is in the mask. */
  signalChildren(sig: Signal, mask: BackendTypeMask): void {
    for (const child of [...this.registry.children(mask)]) this.signalChild(child, sig);
  }

  /**
   * Whether the postmaster had sent this child SIGQUIT/SIGKILL before it
   * exited; forgets the child. (PostgreSQL's STARTUP_SIGNALED, for any kind.)
   */
  takeQuitSent(child: PMChild): boolean {
    return this.#quitSent.delete(child.id);
  }

  forgetQuitSent(): void {
    this.#quitSent.clear();
  }

  /** Turns a client away with a FATAL (a dead-end backend), without blocking the loop. */
  startDeadEnd(conn: Connection, rejection: PgError, timeoutMs: number): void {
    const child = this.registry.allocDeadEnd(conn);
    const abort = new AbortController();
    this.#deadEnds.set(child.id, abort);
    const ssl = conn.remote.family === "tcp" ? this.#sslServer() : null;
    void serveDeadEnd(conn, rejection, { timeoutMs, abort: abort.signal, ssl }).finally(() => {
      this.#enqueue({ type: "dead-end-done", id: child.id });
    });
  }

  /** A dead-end client is gone: release its entry. */
  deadEndDone(id: number): void {
    this.#deadEnds.delete(id);
    const child = this.registry.findById(id);
    if (child !== undefined) this.registry.release(child);
  }
}

export function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Opens the listen sockets, logging each as PostgreSQL does; a failure is logged and skipped. */
export async function openListeners(
  net: NetAdapter,
  addresses: readonly ListenAddress[],
  onConnection: (conn: AcceptedConnection) => void,
): Promise<Listener[]> {
  const listeners: Listener[] = [];
  for (const address of addresses) {
    try {
      const l = await net.listen(address, onConnection);
      listeners.push(l);
      const a = l.address;
      ereport(
        "LOG",
        a.family === "unix"
          ? `listening on Unix socket "${a.path}"`
          : `listening on ${
            a.host.includes(":") ? "IPv6" : "IPv4"
          } address "${a.host}", port ${a.port}`,
        LOG,
      );
    } catch (e) {
      const where = address.family === "unix" ? address.path : address.host;
      if ((e as { code?: unknown } | null)?.code === "EADDRINUSE") {
        // PostgreSQL's words for the usual cause: another server on the port.
        const kind = address.family === "unix" ? "Unix" : where.includes(":") ? "IPv6" : "IPv4";
        const port = address.family === "unix"
          ? address.path.replace(/^.*\.s\.PGSQL\./, "")
          : address.port;
        ereport("LOG", `could not bind ${kind} address "${where}": Address already in use`, {
          ...LOG,
          hint: address.family === "unix"
            ? `Is another postmaster already running on port ${port}?`
            : `Is another postmaster already running on port ${port}? If not, wait a few seconds and retry.`,
        });
        ereport("WARNING", `could not create listen socket for "${where}"`, LOG);
      } else {
        ereport("WARNING", `could not create listen socket for "${where}"`, {
          ...LOG,
          detail: errText(e),
        });
      }
    }
  }
  return listeners;
}
