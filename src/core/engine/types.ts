/**
 * The engine contract: what a backend asks of the SQL engine, whatever runs
 * it: PGlite, owned by the engine child and reached over a Unix socket
 * (remote.ts) or in the same realm (src/engines/pglite), or an upstream
 * PostgreSQL, one connection of its own per session, held by the backend
 * (src/engines/upstream). Sessions speak protocol 3.0 bytes in and out, so
 * the contract can cross a process boundary unchanged. Types only; no
 * runtime code.
 */

import type { PgError } from "../elog.ts";
import type { TransactionStatus } from "../protocol/constants.ts";

/** ReadyForQuery's transaction status, defined with the protocol's constants. */
export type { TransactionStatus };

/** What the backend learned from the client's StartupMessage. */
export interface SessionStartup {
  /** The backend's pid, as NotificationResponse and the activity view show it. */
  readonly pid: number;
  readonly user: string;
  readonly database: string;
  /** application_name, options, DateStyle, client_encoding, search_path... from the StartupMessage. */
  readonly params: Readonly<Record<string, string>>;
  /** The client's address and port for a TCP connection (pg_stat_activity's client_addr, client_port). */
  readonly client?: {
    readonly address: string;
    readonly port: number;
    /** The server's end (inet_server_addr, inet_server_port), where known. */
    readonly local?: { readonly address: string; readonly port: number } | undefined;
  };
  /** The connection's TLS, when it has one (pg_stat_ssl). */
  readonly ssl?: SessionSsl;
  /**
   * When the client logged in with SCRAM against the role's stored secret:
   * what an engine that relays to another server needs to log in there as
   * the same role (base64 ClientKey and ServerKey, the secret's salt and
   * iteration count). Engines that do not log in elsewhere ignore it.
   */
  readonly scram?: ScramLogin;
}

/** What pg_stat_ssl shows of a connection's TLS. */
export interface SessionSsl {
  /** "TLSv1.3" and the like. */
  readonly version: string;
  readonly cipher: string;
  readonly bits: number;
  /** The client certificate's subject ("/CN=name"), or null when it presented none. */
  readonly clientDn: string | null;
}

export interface ScramLogin {
  readonly clientKey: string;
  readonly serverKey: string;
  readonly salt: string;
  readonly iterations: number;
}

/**
 * Where an engine's answer goes: a promise back means "full, wait for it
 * before producing more" (a socket's write buffer past its limit).
 */
export type BackendOutput = (backend: Uint8Array) => void | Promise<void>;

/** One client's session on the engine. */
export interface EngineSession {
  /**
   * Runs complete framed v3 frontend messages (never the startup packet).
   * Backend messages go to `out`, framed, possibly in several calls; the
   * promise resolves when this input is fully processed. At most one call is
   * in flight per session. `frontend` is lent for the call only (the backend
   * reuses its buffer for the next command): bytes kept longer are copied.
   * `out` may answer with a promise: the client's side is full (a slow
   * reader of a huge result), and the engine should produce no more until
   * it resolves (backpressure; an engine that cannot wait ignores it).
   */
  exec(frontend: Uint8Array, out: BackendOutput): Promise<void>;
  /** The status of the last ReadyForQuery. */
  readonly transactionStatus: TransactionStatus;
  /** Cancels the running statement (57014) or a wait for the engine. */
  cancel(): void;
  /** Ends the session; an open transaction is rolled back at once. */
  close(): Promise<void>;
  /**
   * Asynchronous messages (NotificationResponse, ParameterStatus, NoticeResponse) for this
   * session only; a promise back while the client's socket is full (until it drains).
   */
  onAsync: ((backend: Uint8Array) => void | Promise<void>) | null;
  /**
   * Called once when the engine ends the session on its own (an
   * idle-in-transaction timeout, an engine failure, shutdown), after the
   * FATAL ErrorResponse went through `onAsync`: the backend should close its
   * client. Later `exec` calls reject with the same FATAL error. Optional:
   * an engine that never ends sessions itself need not call it.
   */
  onTerminate?: ((reason: PgError) => void) | null;
  /**
   * Pass-through, for sessions that relay bytes to another server (the
   * upstream engine). When present, the backend hands this the client's
   * bytes after startup as they arrive, unparsed, instead of whole messages
   * to `exec`: a call may hold part of a message or many, and the session
   * finds their boundaries itself (the server it relays to checks them).
   * Resolves when the input so far is answered, as `exec` does, with true;
   * with false once it held a Terminate, whose bytes and any after it are
   * not relayed (the backend then ends, as after a Terminate). The bytes are
   * given, not lent: the session may keep them.
   */
  relay?(client: Uint8Array, out: (backend: Uint8Array) => void): Promise<boolean>;
}

/** The ParameterStatus messages a new session starts with, as name/value pairs. */
export type ParameterStatusList = ReadonlyArray<readonly [string, string]>;

/** A role as authentication needs it. */
export interface RoleInfo {
  readonly name: string;
  readonly superuser: boolean;
  readonly canLogin: boolean;
  /** pg_authid.rolpassword: a SCRAM secret, an md5 hash, or null. */
  readonly secret: string | null;
  /**
   * pg_authid.rolvaliduntil in ms since the Unix epoch (Infinity for
   * 'infinity'): after it the password no longer logs in. Absent or null:
   * it never expires.
   */
  readonly validUntil?: number | null;
  /** It has privileges of pg_use_reserved_connections (reserved_connections' slots are its too). */
  readonly useReservedConnections?: boolean;
}

export interface Engine {
  /** The role named `name`, or null if there is none (the backend then raises 28000). */
  lookupRole(name: string): Promise<RoleInfo | null>;
  /**
   * Starts a session; rejects with a FATAL PgError (3D000, 28000...) when it
   * cannot. `parameterStatus` may be shared by sessions started alike.
   */
  startSession(
    startup: SessionStartup,
  ): Promise<{ session: EngineSession; parameterStatus: ParameterStatusList }>;
  close(): Promise<void>;
}
