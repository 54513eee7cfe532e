/**
 * Opening one upstream connection, libpq's PQconnectStart..PQconnectPoll:
 * dial through the injected `connect`, negotiate TLS as `sslmode` says
 * (SSLRequest, then the handshake by the injected `startTls`), send the
 * StartupMessage, answer the upstream's authentication request with pgts's
 * own credentials (SCRAM-SHA-256-PLUS over TLS when offered, SCRAM-SHA-256,
 * md5, cleartext password, or trust), collect ParameterStatus and
 * BackendKeyData, and stop at the first ReadyForQuery.
 *
 * Every failure is a FATAL PgError the backend can send as is: 08001 when
 * the upstream cannot be reached, refuses pgts's credentials or is not
 * accepting connections, with the upstream's own reason in the message;
 * 08006 when it hangs up mid-way; the upstream's code for what concerns the
 * client's request (an unknown database, too many connections, a bad
 * startup option). Nothing here trusts the upstream's bytes: a malformed
 * message is an 08P01, not a crash.
 */

import { ERRCODE, isPgError, PgError } from "../../core/elog.ts";
import type { Connection } from "../../core/adapter.ts";
import {
  BE,
  ConnectionReader,
  ENCRYPTION_ACCEPTED,
  ENCRYPTION_REFUSED,
  type Message,
  MessageWriter,
  parseAuthenticationRequest,
  parseBackendKeyData,
  parseDataRowText,
  parseErrorResponse,
  parseParameterStatus,
  pgErrorFromFields,
  writePasswordMessage,
  writeQuery,
  writeSASLInitialResponse,
  writeSASLResponse,
  writeSSLRequest,
  writeStartupMessage,
  writeTerminate,
} from "../../core/protocol/mod.ts";
import { md5PasswordHash, md5SaltedResponse } from "../../core/auth/md5.ts";
import { ScramClient, type ScramKeys } from "./scram-client.ts";
import type { UpstreamAddress, UpstreamTarget } from "./url.ts";

/** Dials the upstream; rejects with the system's reason (ECONNREFUSED...). */
export type UpstreamConnect = (address: UpstreamAddress) => Promise<Connection>;

/** How the server's certificate is checked: not at all, its chain, its chain and host name. */
export type UpstreamVerify = "none" | "ca" | "full";

/**
 * The client side of a TLS handshake on `raw` (after the upstream said 'S'
 * to an SSLRequest): resolves with the decrypted connection and the
 * server certificate's tls-server-end-point hash (null when its signature
 * algorithm has none); rejects with libpq's reason ("certificate verify
 * failed", a host name mismatch, a root file that does not exist).
 */
export type UpstreamStartTls = (raw: Connection, options: {
  /** SNI, or null (an IP address, sslsni=0). */
  readonly servername: string | null;
  /** sslrootcert: a PEM file's path, "system", or null for libpq's default file. */
  readonly rootCert: string | null;
  readonly verify: UpstreamVerify;
  /** The name the certificate must carry (verify "full"). */
  readonly host: string;
}) => Promise<{ connection: Connection; endPoint: Uint8Array | null }>;

export interface UpstreamConnection {
  readonly conn: Connection;
  /** The host it reached (of several, the one target_session_attrs accepted). */
  readonly address: UpstreamAddress;
  /** The upstream backend's pid and cancel key, for CancelRequest. */
  readonly pid: number;
  readonly key: Uint8Array;
  readonly parameterStatus: Array<[string, string]>;
  /** Bytes that arrived and were not read yet (normally none), unparsed. */
  rest: Uint8Array;
}

/**
 * Logging in as a role other than the URL's user: with the SCRAM keys its
 * client proved to pgts (the upstream must ask for SCRAM with the same
 * secret), or with what auth_file gives (a password, or an md5 hash for the
 * upstream's md5 challenge).
 */
export type UpstreamLogin =
  | { readonly user: string; readonly keys: ScramKeys }
  | { readonly user: string; readonly password: string }
  | { readonly user: string; readonly md5: string };

export interface OpenOptions {
  readonly database: string;
  /** Log in as this role instead of the URL's user with its password. */
  readonly login?: UpstreamLogin | undefined;
  /** Startup parameters besides user and database (application_name, options, role...). */
  readonly params: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
}

const SCRAM_SHA_256 = "SCRAM-SHA-256";
const SCRAM_SHA_256_PLUS = "SCRAM-SHA-256-PLUS";
/** No startup message or role row is anywhere near this; a longer length word is garbage. */
const MAX_SHORT_MESSAGE = 1 << 20;

/** The upstream error codes that are about the client's request, passed through as they are. */
function passesThrough(code: string): boolean {
  return code === "3D000" || code.startsWith("53") || code.startsWith("42") ||
    code.startsWith("22");
}

function unreachable(target: UpstreamTarget, reason: string): PgError {
  return new PgError(
    ERRCODE.SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
    `could not connect to the upstream server: ${reason}`,
    { severity: "FATAL", detail: `The upstream server is "${target.display}".` },
  );
}

type Options = OpenOptions & {
  connect: UpstreamConnect;
  startTls?: UpstreamStartTls | undefined;
};

/**
 * The first of the target's hosts that can be reached and matches its
 * target_session_attrs, tried in order as libpq does (prefer-standby: a
 * standby, else any). The server's own ParameterStatus says what it is:
 * `in_hot_standby` and `default_transaction_read_only` (PostgreSQL 14+).
 */
export async function openUpstream(
  target: UpstreamTarget,
  options: Options,
): Promise<UpstreamConnection> {
  const hosts = target.hosts ?? [target];
  const attrs = target.targetSessionAttrs ?? "any";
  if (hosts.length === 1 && attrs === "any") return await openHost(target, options);
  const passes: Array<(p: Map<string, string>) => string | null> = attrs === "prefer-standby"
    ? [sessionCheck("standby"), () => null]
    : [sessionCheck(attrs)];
  let last: PgError | null = null;
  for (const check of passes) {
    for (const h of hosts) {
      const one = { ...target, address: h.address, display: h.display, ssl: h.ssl };
      let c: UpstreamConnection;
      try {
        c = await openHost(one, options);
      } catch (e) {
        if (!isPgError(e)) throw e;
        // Errors about the client's request are the same on every host;
        // a full host (53300) is not.
        if (passesThrough(e.code) && !e.code.startsWith("53")) throw e;
        last = e;
        continue;
      }
      const refused = check(new Map(c.parameterStatus));
      if (refused === null) return c;
      c.conn.write(MessageWriter.encode((w) => writeTerminate(w)));
      c.conn.end();
      last = unreachable(one, refused);
    }
  }
  throw new PgError(
    ERRCODE.SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
    last?.message ?? "could not connect to the upstream server",
    {
      severity: "FATAL",
      detail: `Tried ${hosts.map((h) => `"${h.display}"`).join(", ")}` +
        (attrs === "any" ? "." : ` for target_session_attrs=${attrs}.`),
    },
  );
}

/** A check of a server's reported state for target_session_attrs: null when it fits, else why not. */
function sessionCheck(attrs: string): (p: Map<string, string>) => string | null {
  const standby = (p: Map<string, string>) => p.get("in_hot_standby") === "on";
  const readOnly = (p: Map<string, string>) =>
    standby(p) || p.get("default_transaction_read_only") === "on";
  switch (attrs) {
    case "read-write":
      return (p) => readOnly(p) ? "session is read-only" : null;
    case "read-only":
      return (p) => readOnly(p) ? null : "session is not read-only";
    case "primary":
      return (p) => standby(p) ? "server is in hot standby mode" : null;
    case "standby":
      return (p) => standby(p) ? null : "server is not in hot standby mode";
    default:
      return () => null;
  }
}

async function openHost(target: UpstreamTarget, options: Options): Promise<UpstreamConnection> {
  const mode = target.ssl.mode;
  // Without a TLS implementation (tests with fake sockets) "allow" and
  // "prefer" are plain, as libpq built without SSL treats them.
  const tls = target.address.family === "tcp" && options.startTls !== undefined &&
      mode !== "disable"
    ? options.startTls
    : null;
  if (tls === null && (mode === "require" || mode === "verify-ca" || mode === "verify-full")) {
    if (target.address.family === "tcp") {
      throw unreachable(target, `sslmode "${mode}" is not available without TLS support`);
    }
  }
  if (tls === null) return await attempt(target, options, null);
  if (mode === "allow") {
    // libpq's allow: plain first, TLS when the upstream refuses that.
    try {
      return await attempt(target, options, null);
    } catch (e) {
      if (!isPgError(e) || e.code === ERRCODE.CONNECTION_FAILURE) throw e;
      return await attempt(target, options, tls);
    }
  }
  try {
    return await attempt(target, options, tls);
  } catch (e) {
    // prefer: a handshake that fails is retried in plain, as libpq does.
    if (mode === "prefer" && e instanceof TlsFailure) return await attempt(target, options, null);
    throw e instanceof TlsFailure ? e.error : e;
  }
}

/** A TLS handshake that failed (prefer may retry without). */
class TlsFailure extends Error {
  readonly error: PgError;
  constructor(error: PgError) {
    super(error.message);
    this.error = error;
  }
}

async function attempt(
  target: UpstreamTarget,
  options: OpenOptions & { connect: UpstreamConnect },
  tls: UpstreamStartTls | null,
): Promise<UpstreamConnection> {
  let conn: Connection;
  try {
    conn = await options.connect(target.address);
  } catch (e) {
    throw unreachable(target, e instanceof Error ? e.message : String(e));
  }
  const timer = setTimeout(() => conn.destroy(), options.timeoutMs);
  try {
    let endPoint: Uint8Array | null = null;
    let secure = false;
    if (tls !== null) {
      const s = await negotiateSsl(conn, target, tls);
      if (s !== null) {
        conn = s.connection;
        endPoint = s.endPoint;
        secure = true;
      }
    }
    return await startup(conn, target, options, { secure, endPoint });
  } catch (e) {
    conn.destroy();
    if (isPgError(e) || e instanceof TlsFailure) throw e;
    throw new PgError(
      ERRCODE.PROTOCOL_VIOLATION,
      `invalid startup response from the upstream server: ${(e as Error)?.message ?? e}`,
      { severity: "FATAL", detail: `The upstream server is "${target.display}".` },
    );
  } finally {
    clearTimeout(timer);
  }
}

/**
 * SSLRequest and the handshake; null when the upstream answers 'N' and
 * sslmode lets pgts go on in plain.
 */
async function negotiateSsl(
  conn: Connection,
  target: UpstreamTarget,
  tls: UpstreamStartTls,
): Promise<{ connection: Connection; endPoint: Uint8Array | null } | null> {
  const ssl = target.ssl;
  conn.write(MessageWriter.encode((w) => writeSSLRequest(w)));
  const answer = await new Promise<Uint8Array | null>((resolve) => {
    conn.onData = (chunk) => {
      conn.pause();
      conn.onData = null;
      conn.onClose = null;
      resolve(chunk);
    };
    conn.onClose = () => resolve(null);
    conn.resume();
  });
  if (answer === null) {
    throw new PgError(
      ERRCODE.CONNECTION_FAILURE,
      "the upstream server closed the connection unexpectedly during SSL negotiation",
      { severity: "FATAL", detail: `The upstream server is "${target.display}".` },
    );
  }
  if (answer[0] === ENCRYPTION_REFUSED) {
    if (ssl.mode === "prefer" || ssl.mode === "allow") return null;
    throw unreachable(target, "server does not support SSL, but SSL was required");
  }
  if (answer[0] !== ENCRYPTION_ACCEPTED) {
    throw unreachable(target, `received invalid response to SSL negotiation: ${answer[0]}`);
  }
  // Bytes after 'S' would be read as if they had come encrypted
  // (CVE-2021-23222): refused, as libpq does.
  if (answer.length > 1) throw unreachable(target, "received unencrypted data after SSL response");
  const host = ssl.host ?? "";
  const isAddress = /^[0-9.]+$/.test(host) || host.includes(":");
  // require with a root file verifies the chain, as libpq's does.
  const verify = ssl.mode === "verify-full"
    ? "full"
    : ssl.mode === "verify-ca" || (ssl.mode === "require" && ssl.rootCert !== null)
    ? "ca"
    : "none";
  try {
    return await tls(conn, {
      servername: ssl.sni && !isAddress && host !== "" ? host : null,
      rootCert: ssl.rootCert,
      verify,
      host,
    });
  } catch (e) {
    throw new TlsFailure(unreachable(target, e instanceof Error ? e.message : String(e)));
  }
}

/**
 * Whole upstream messages, awaited one at a time; null once the upstream
 * hung up. For startup and pgts's own short queries: the buffer is simply
 * concatenated. What is left unread is handed on unparsed.
 */
export class UpstreamInput {
  #reader: ConnectionReader;

  constructor(conn: Connection, initial: Uint8Array = new Uint8Array(0)) {
    this.#reader = new ConnectionReader(conn, { initial });
  }

  async next(): Promise<Message | null> {
    const head = await this.#reader.take(5);
    if (head === null) return null;
    const len = new DataView(head.buffer, head.byteOffset, head.byteLength).getInt32(1);
    if (len < 4 || len > MAX_SHORT_MESSAGE) {
      throw new Error(`message of type ${head[0]} with invalid length ${len}`);
    }
    const body = await this.#reader.take(len - 4);
    if (body === null) return null;
    return { type: head[0] as number, body };
  }

  /** Bytes not read yet. */
  rest(): Uint8Array {
    return this.#reader.buffered();
  }
}

async function startup(
  conn: Connection,
  target: UpstreamTarget,
  options: OpenOptions,
  channel: { secure: boolean; endPoint: Uint8Array | null },
): Promise<UpstreamConnection> {
  const input = new UpstreamInput(conn);
  const send = (build: (w: MessageWriter) => void) => conn.write(MessageWriter.encode(build));
  const login = options.login;
  const user = login?.user ?? target.user;
  send((w) => writeStartupMessage(w, { ...options.params, user, database: options.database }));

  const parameterStatus: Array<[string, string]> = [];
  let pid = 0;
  let key = new Uint8Array(0);
  let scram: ScramClient | null = null;
  /** SCRAM-SHA-256-PLUS was used: the session is bound to this TLS channel. */
  let bound = false;
  const needPassword = (): string => {
    if (login !== undefined && "password" in login) return login.password;
    if (login !== undefined) {
      const has = "keys" in login
        ? "the SCRAM keys its client logged in with"
        : "the md5 hash of auth_file";
      throw unreachable(
        target,
        `the upstream server asked for a password for user "${user}", and pgts has only ${has}`,
      );
    }
    if (target.password !== null) return target.password;
    throw unreachable(
      target,
      `the upstream server asked for a password for user "${user}", and the engine URL has none`,
    );
  };
  /** SCRAM's secret: the client's keys, or a password. */
  const scramSecret = (): string | ScramKeys =>
    login !== undefined && "keys" in login ? login.keys : needPassword();

  for (;;) {
    const m = await input.next();
    if (m === null) {
      throw new PgError(
        ERRCODE.CONNECTION_FAILURE,
        "the upstream server closed the connection unexpectedly during startup",
        { severity: "FATAL", detail: `The upstream server is "${target.display}".` },
      );
    }
    switch (m.type) {
      case BE.AuthenticationRequest: {
        const req = parseAuthenticationRequest(m.body);
        const binding = target.ssl.channelBinding;
        if (req.code === 0) {
          if (binding === "require" && !bound) {
            throw unreachable(
              target,
              "channel binding required, but server authenticated client without channel binding",
            );
          }
          break;
        }
        if (binding === "require" && req.code !== 10 && req.code !== 11 && req.code !== 12) {
          throw unreachable(
            target,
            "channel binding required but not supported by server's authentication request",
          );
        }
        if (req.code === 3) {
          send((w) => writePasswordMessage(w, needPassword()));
        } else if (req.code === 5 && "salt" in req) {
          const hash = login !== undefined && "md5" in login
            ? login.md5
            : md5PasswordHash(needPassword(), user);
          send((w) => writePasswordMessage(w, md5SaltedResponse(hash, req.salt)));
        } else if (req.code === 10 && "mechanisms" in req) {
          const plus = channel.endPoint !== null && binding !== "disable" &&
            req.mechanisms.includes(SCRAM_SHA_256_PLUS);
          if (binding === "require" && !plus) {
            throw unreachable(
              target,
              "channel binding is required, but server did not offer an authentication method that supports channel binding",
            );
          }
          if (!plus && !req.mechanisms.includes(SCRAM_SHA_256)) {
            throw unreachable(
              target,
              `the upstream server offered SASL mechanisms ${
                req.mechanisms.join(", ")
              }, and pgts speaks only ${SCRAM_SHA_256} and ${SCRAM_SHA_256_PLUS}`,
            );
          }
          scram = plus
            ? new ScramClient(scramSecret(), { endPoint: channel.endPoint! })
            : new ScramClient(scramSecret(), { tls: channel.secure && binding !== "disable" });
          bound = plus;
          const data = scram.clientFirst();
          const mechanism = plus ? SCRAM_SHA_256_PLUS : SCRAM_SHA_256;
          send((w) => writeSASLInitialResponse(w, { mechanism, data }));
        } else if (req.code === 11 && "data" in req && scram !== null) {
          const data = await scram.clientFinal(req.data);
          send((w) => writeSASLResponse(w, data));
        } else if (req.code === 12 && "data" in req && scram !== null) {
          try {
            scram.verifyServerFinal(req.data);
          } catch (e) {
            throw unreachable(target, (e as Error).message);
          }
        } else {
          throw unreachable(
            target,
            `the upstream server requested authentication method ${req.code}, which pgts does not support`,
          );
        }
        break;
      }
      case BE.ParameterStatus: {
        const { name, value } = parseParameterStatus(m.body);
        parameterStatus.push([name, value]);
        break;
      }
      case BE.BackendKeyData: {
        const k = parseBackendKeyData(m.body);
        pid = k.pid;
        key = k.key.slice();
        break;
      }
      case BE.ErrorResponse: {
        const upstream = pgErrorFromFields(parseErrorResponse(m.body));
        if (passesThrough(upstream.code)) {
          throw new PgError(upstream.code, upstream.message, {
            ...upstream.fields,
            severity: "FATAL",
          });
        }
        throw unreachable(target, upstream.message);
      }
      case BE.ReadyForQuery: {
        conn.pause();
        conn.onData = null;
        conn.onClose = null;
        return { conn, address: target.address, pid, key, parameterStatus, rest: input.rest() };
      }
      default:
        // NoticeResponse, NegotiateProtocolVersion: nothing to act on.
        break;
    }
  }
}

/**
 * Runs one simple Query on a connection that is between commands; resolves
 * with the rows as text, rejects with the upstream's error (or 08006 when it
 * hangs up). The connection stays usable after an error.
 */
export async function simpleQuery(
  upstream: UpstreamConnection,
  sql: string,
): Promise<(string | null)[][]> {
  const input = new UpstreamInput(upstream.conn, upstream.rest);
  upstream.conn.write(MessageWriter.encode((w) => writeQuery(w, sql)));
  const rows: (string | null)[][] = [];
  let error: PgError | null = null;
  try {
    for (;;) {
      const m = await input.next();
      if (m === null) {
        throw new PgError(
          ERRCODE.CONNECTION_FAILURE,
          "the upstream server closed the connection unexpectedly",
          { severity: "FATAL" },
        );
      }
      if (m.type === BE.DataRow) rows.push(parseDataRowText(m.body));
      else if (m.type === BE.ErrorResponse) error = pgErrorFromFields(parseErrorResponse(m.body));
      else if (m.type === BE.ReadyForQuery) break;
    }
  } finally {
    upstream.rest = input.rest();
    upstream.conn.pause();
    upstream.conn.onData = null;
    upstream.conn.onClose = null;
  }
  if (error !== null) throw error;
  return rows;
}
