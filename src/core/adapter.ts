/**
 * The adapter contract: the interfaces src/core declares and every adapter
 * (src/adapters) implements, the pgts counterpart of PostgreSQL's
 * launch_backend.c and of the socket layer under pqcomm.c. Sockets are a
 * `Connection` to a client, a `NetAdapter` that listens; children are a
 * `ChildLauncher` that starts them, a `ChildProcess` the postmaster holds,
 * the `ChildEnv` a child's main sees.
 *
 * Core decides *what* child to start and *when*; an adapter (src/adapters/bun,
 * src/adapters/deno, src/adapters/inproc, src/adapters/worker) decides *how*:
 * a Bun or Deno subprocess, a Web Worker, or a task in the same realm. The
 * same child main runs under all of them, reached through `ChildEnv`.
 * Everything here is a type: this module must never import a runtime API.
 */

/** The signals pgts uses, as PostgreSQL's postmaster sends and receives them. */
export type Signal =
  | "SIGHUP"
  | "SIGINT"
  | "SIGTERM"
  | "SIGQUIT"
  | "SIGKILL"
  | "SIGUSR1"
  | "SIGUSR2"
  | "SIGABRT";

/** The signals a child can handle (SIGKILL never reaches a handler). */
export type CatchableSignal = Exclude<Signal, "SIGKILL">;

/** How a child ended: an exit code, or the signal that killed it. */
export type ChildExit =
  | { readonly code: number; readonly signal: null }
  | { readonly code: null; readonly signal: Signal };

/** Where a client connection comes from. */
export type RemoteAddress =
  | { readonly family: "unix"; readonly path: string }
  | {
    readonly family: "tcp";
    readonly address: string;
    readonly port: number;
    /** The server's end of the connection (inet_server_addr, inet_server_port), where known. */
    readonly local?: { readonly address: string; readonly port: number } | undefined;
  };

/**
 * A byte stream to a client, as seen by whoever currently serves it (the
 * postmaster before hand-off, or the backend after). Callbacks are set by the
 * consumer; data is not delivered before `onData` is set and `resume()` called.
 */
export interface Connection {
  readonly remote: RemoteAddress;
  onData: ((chunk: Uint8Array) => void) | null;
  /** Called once, when the peer closed or the connection was destroyed. */
  onClose: (() => void) | null;
  /** Starts (or restarts) delivery to `onData`. */
  resume(): void;
  /**
   * Stops delivery; bytes stay in the kernel buffer (an adapter may hold
   * the one chunk it read before pausing the socket itself).
   */
  pause(): void;
  /** Queues bytes; returns false when the caller should wait for `drained`. */
  write(bytes: Uint8Array): boolean;
  /** Resolves when queued bytes have been handed to the kernel. */
  drained(): Promise<void>;
  /** Flushes queued bytes, then closes. */
  end(): void;
  /** Closes at once, dropping queued bytes. */
  destroy(): void;
}

/**
 * A connection the postmaster accepted and has not handed off yet. The adapter
 * that accepted it knows how to move it into a child without relaying bytes
 * (`handle` is adapter-private: a Bun socket, an fd, a Deno.Conn...).
 */
export interface AcceptedConnection extends Connection {
  readonly handle: unknown;
}

/** Listening socket addresses, as the postmaster configures them. */
export type ListenAddress =
  | {
    readonly family: "tcp";
    readonly host: string;
    readonly port: number;
    /**
     * Every accepted connection gets SO_KEEPALIVE, as PostgreSQL's
     * StreamConnection sets it; this its idle time before the first probe
     * (tcp_keepalives_idle, where the runtime can set it), in ms; 0 or
     * absent: the system's.
     */
    readonly keepAliveIdleMs?: number;
  }
  | {
    readonly family: "unix";
    readonly path: string;
    /** The socket file's mode (unix_socket_permissions); the process's umask decides when absent. */
    readonly permissions?: number;
    /** Its group, a name or a number (unix_socket_group); the process's when absent or "". */
    readonly group?: string;
  };

export interface Listener {
  /** The bound address (for tcp with port 0, the port the kernel picked). */
  readonly address: ListenAddress;
  close(): Promise<void>;
}

/** Sockets, implemented per runtime. */
export interface NetAdapter {
  /**
   * False where a connection this process has read from cannot be handed to
   * a child intact (node:net's `child.send(msg, socket)` under Deno): the
   * postmaster then starts a backend without reading the client's first
   * packet itself (firstpacket.ts). Absent: true.
   */
  readonly readsBeforeHandOff?: boolean;
  listen(
    address: ListenAddress,
    onConnection: (conn: AcceptedConnection) => void,
  ): Promise<Listener>;
}

/** What a child is to run: an exported function of a module (bgw_library_name / bgw_function_name). */
export interface ChildEntry {
  /** Module specifier resolvable from the child (absolute file URL or package specifier). */
  readonly module: string;
  /** Name of the exported `ChildMain`. */
  readonly export: string;
}

/** Everything needed to start one child (PostgreSQL's BackendParameters). */
export interface ChildStartInfo {
  /** The child kind, for logs and restart rules (a BackendType name). */
  readonly kind: string;
  /** A display name ("client backend", "checkpointer", a worker's bgw_name). */
  readonly name: string;
  readonly entry: ChildEntry;
  /** Structured-cloneable start parameters: settings, data directory, worker arguments. */
  readonly params: unknown;
  /** For a backend: the client it serves, handed over without relaying bytes where the runtime allows. */
  readonly client?: AcceptedConnection;
}

/** The postmaster's handle on a running child. */
export interface ChildProcess {
  /** OS pid, or a synthetic unique pid where children are not processes. */
  readonly pid: number;
  /** Delivers a signal: an OS signal for a subprocess, a control message (SIGKILL: terminate) otherwise. */
  signal(sig: Signal): void;
  /** Sends a structured-cloneable control message to the child. */
  post(message: unknown): void;
  /** Messages from the child. */
  onMessage: ((message: unknown) => void) | null;
  /** Resolves once, when the child has ended for any reason. */
  readonly exited: Promise<ChildExit>;
}

/** Starts children; one implementation per adapter. */
export interface ChildLauncher {
  readonly name: string;
  launch(info: ChildStartInfo): Promise<ChildProcess>;
  /** Releases what the launcher holds (worker pools, IPC servers). */
  close(): Promise<void>;
}

/** What a child main sees of its world, the same under every adapter. */
export interface ChildEnv {
  readonly pid: number;
  readonly kind: string;
  readonly name: string;
  readonly params: unknown;
  /** The client connection, for a backend. */
  readonly client: Connection | null;
  /** Registers a handler for a signal sent by the postmaster (never SIGKILL, which cannot be caught). */
  onSignal(sig: Exclude<Signal, "SIGKILL">, handler: () => void): void;
  /** Sends a structured-cloneable message to the postmaster. */
  post(message: unknown): void;
  /** Messages from the postmaster. */
  onMessage: ((message: unknown) => void) | null;
  /** Aborted when the child must stop at once (SIGKILL, postmaster death). */
  readonly abort: AbortSignal;
}

/** A child's entry point. The returned number (default 0) is its exit code; a throw is a crash. */
export type ChildMain = (env: ChildEnv) => Promise<number | void> | number | void;

/** What an HTTP front end is told of a request besides the request itself. */
export interface HttpRequestInfo {
  /** The client's numeric IP address, when the host tells it. */
  readonly remoteAddress?: string;
}

/** A fetch handler, as the runtime's HTTP server calls it. */
export type HttpHandler = (
  request: Request,
  info: HttpRequestInfo,
) => Promise<Response> | Response;

/** Where and how the runtime's HTTP server listens. */
export interface HttpListenOptions {
  readonly port: number;
  readonly hostname: string;
  /** Serve HTTPS with this certificate chain and key (PEM text); absent: plain HTTP. */
  readonly tls?: { readonly cert: string; readonly key: string };
}

/** A listening HTTP server. */
export interface HttpServing {
  readonly hostname: string;
  readonly port: number;
  close(): Promise<void>;
}

/** The runtime's own HTTP server (Bun.serve, Deno.serve), one implementation per runtime. */
export type ServeHttp = (handler: HttpHandler, options: HttpListenOptions) => HttpServing;
