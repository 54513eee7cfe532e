/**
 * A backend's first steps (PostgreSQL's backend_startup.c and the part of
 * InitPostgres that checks who is connecting): read the startup packet,
 * run SSL when the server has it (an SSLRequest answered 'S', or
 * PostgreSQL 17's direct SSL; the handshake is secure.ts's SslServer's),
 * refuse GSS encryption with 'N', pass a CancelRequest to the postmaster,
 * find the pg_hba.conf line (hostssl/hostnossl), check the client
 * certificate (clientcert, cert), authenticate the role, apply the
 * reserved-slot rule, and open the engine session.
 *
 * `authentication_timeout` bounds all of it: a client that sends nothing,
 * or stalls in the exchange, is dropped. Every refusal is a FATAL PgError
 * with PostgreSQL's SQLSTATE and text; the caller reports it.
 */

import { ereport, ERRCODE, isPgError, PgError } from "../elog.ts";
import { currentLogPrefix } from "../log.ts";
import {
  type AuthStep,
  checkRoleLogin,
  ClientAuthentication,
  type HbaLine,
  hbaLineFor,
  passwordAuthFailedError,
} from "../auth/mod.ts";
import type { Engine, EngineSession, ParameterStatusList, ScramLogin } from "../engine/types.ts";
import {
  CommError,
  ENCRYPTION_ACCEPTED,
  ENCRYPTION_REFUSED,
  MessageWriter,
  NEGOTIATE_GSS_CODE,
  NEGOTIATE_SSL_CODE,
  parseStartupPacket,
  PG_PROTOCOL_EARLIEST,
  PG_PROTOCOL_LATEST,
  type StartupMessage,
  writeAuthenticationOk,
  writeNegotiateProtocolVersion,
} from "../protocol/mod.ts";
import type { ChildEnv } from "../adapter.ts";
import type {
  BackendKeyMessage,
  CancelRequestMessage,
  PostmasterLink,
} from "../postmaster/pmsignal.ts";
import type { ClientInput } from "./input.ts";
import { PG_ALPN_PROTOCOL, type SslServer, type SslSession, TLS_HANDSHAKE_BYTE } from "./secure.ts";

/**
 * Cancel keys, drawn from the system's CSPRNG 256 at a time: one draw per
 * connection was a system call and a typed array each. Every key is used
 * once, by one backend of this realm.
 */
const cancelKeys = new Int32Array(256);
let cancelKeysLeft = 0;

function nextCancelKey(): number {
  if (cancelKeysLeft === 0) {
    crypto.getRandomValues(cancelKeys);
    cancelKeysLeft = cancelKeys.length;
  }
  return cancelKeys[--cancelKeysLeft]!;
}

export interface StartupSettings {
  readonly authenticationTimeoutMs: number;
  readonly superuserReservedConnections: number;
  readonly logConnections?: boolean;
  /** log_disconnections: the session's end is logged with its duration (postgres.ts). */
  readonly logDisconnections?: boolean;
}

export interface StartupContext {
  readonly input: ClientInput;
  readonly link: PostmasterLink;
  readonly engine: Engine;
  readonly hba: readonly HbaLine[];
  readonly settings: StartupSettings;
  /** The TLS side of SSL, when ssl is on (the postmaster loaded its files); null or absent: 'N'. */
  readonly ssl?: SslServer | null;
  /** When the postmaster accepted the client (ms since the epoch): the timeout runs from there. */
  readonly acceptedAt?: number | null;
}

export interface StartedSession {
  readonly session: EngineSession;
  readonly parameterStatus: ParameterStatusList;
  readonly secretKey: number;
  /**
   * AuthenticationOk, not yet sent: as in PostgreSQL it goes out in one
   * write with the ParameterStatus messages that follow it. (Sent at once
   * when the startup fails after authentication, before the FATAL.)
   */
  readonly authenticationOk: Uint8Array;
}

/** The longest a CancelRequest's connection waits for the postmaster to have signalled its target. */
const CANCEL_ACK_MS = 1000;

const LOG = { category: "backend" } as const;
const N = Uint8Array.of(ENCRYPTION_REFUSED);
const S = Uint8Array.of(ENCRYPTION_ACCEPTED);

/** A second SSLRequest or GSSENCRequest, as the version check PostgreSQL lets it fall into reports it. */
function unsupportedProtocol(code: number): PgError {
  return new PgError(
    ERRCODE.FEATURE_NOT_SUPPORTED,
    `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}: server supports ${
      PG_PROTOCOL_EARLIEST >>> 16
    }.0 to ${PG_PROTOCOL_LATEST >>> 16}.${PG_PROTOCOL_LATEST & 0xffff}`,
    { severity: "FATAL" },
  );
}

function logSsl(ssl: SslSession, how: "direct" | "negotiated"): void {
  ereport("DEBUG1", `SSL connection (${how}): protocol=${ssl.protocol} cipher=${ssl.cipher}`, LOG);
}

/**
 * Runs the start of a backend's life. Null when there is no session to
 * serve and nothing to report: a cancel request, a client that left, or an
 * authentication timeout (PostgreSQL exits silently there too).
 */
export async function performStartup(
  env: ChildEnv,
  ctx: StartupContext,
): Promise<StartedSession | null> {
  let timedOut = false;
  const timeoutMs = ctx.settings.authenticationTimeoutMs;
  const since = ctx.acceptedAt ?? null;
  const left = since === null ? timeoutMs : Math.max(0, timeoutMs - (Date.now() - since));
  const timer = setTimeout(() => {
    timedOut = true;
    ereport("LOG", "canceling authentication due to timeout", LOG);
    ctx.input.stop();
    ctx.input.connection.destroy();
  }, left);
  try {
    const result = await startup(env, ctx);
    return timedOut ? null : result;
  } catch (e) {
    if (timedOut) return null;
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

async function startup(env: ChildEnv, ctx: StartupContext): Promise<StartedSession | null> {
  const input = ctx.input;
  const tcp = input.connection.remote.family === "tcp";
  // No session facts in the prefix until the start-up packet gives them (a
  // backend process may have served a session before).
  currentLogPrefix()?.clearSession();
  if (ctx.settings.logConnections === true) {
    // Before the start-up packet is read, as PostgreSQL's BackendInitialize logs it.
    const r = input.connection.remote;
    ereport(
      "LOG",
      r.family === "tcp"
        ? `connection received: host=${r.address} port=${r.port}`
        : "connection received: host=[local]",
      LOG,
    );
  }
  // No SSL on Unix sockets, as in PostgreSQL.
  const sslServer = tcp ? ctx.ssl ?? null : null;
  let ssl: SslSession | null = null;
  // PostgreSQL 17's direct SSL: a TLS ClientHello where the length word of
  // the first packet would be (ProcessSSLStartup). Without SSL it is read as
  // a startup packet, and its length is refused.
  if (sslServer !== null) {
    const first = await input.firstByte();
    if (first === null) return null;
    if (first === TLS_HANDSHAKE_BYTE) {
      ssl = await input.secure((raw, early) => sslServer.accept(raw, early));
      if (ssl.alpn !== PG_ALPN_PROTOCOL) {
        throw new CommError(
          "received direct SSL connection request without ALPN protocol negotiation extension",
        );
      }
      logSsl(ssl, "direct");
    }
  }
  // ProcessStartupPacket's ssl_done and gss_done: each request is answered
  // once (inside direct SSL too, with 'N'), GSSENCRequest only until an
  // SSLRequest got 'S'. Anything more falls through to the version check,
  // as in PostgreSQL.
  let sslDone = false;
  let gssDone = false;
  let packet: StartupMessage | null = null;
  while (packet === null) {
    const body = await input.startupPacket();
    if (body === null) return null;
    const p = parseStartupPacket(body);
    switch (p.kind) {
      case "ssl":
        if (sslDone) throw unsupportedProtocol(NEGOTIATE_SSL_CODE);
        sslDone = true;
        if (sslServer === null || ssl !== null) {
          input.connection.write(N);
          continue;
        }
        input.connection.write(S);
        // Bytes that came with the request were not encrypted, and may have
        // been injected by someone in the middle (CVE-2021-23214).
        if (input.buffered > 0) {
          throw new PgError(
            ERRCODE.PROTOCOL_VIOLATION,
            "received unencrypted data after SSL request",
            {
              severity: "FATAL",
              detail:
                "This could be either a client-software bug or evidence of an attempted man-in-the-middle attack.",
            },
          );
        }
        ssl = await input.secure((raw, early) => sslServer.accept(raw, early));
        // A client that offers ALPN must offer "postgresql" (node:tls has
        // refused any other already); one that offers none is older than 17.
        gssDone = true;
        logSsl(ssl, "negotiated");
        continue;
      case "gssenc":
        if (gssDone) throw unsupportedProtocol(NEGOTIATE_GSS_CODE);
        gssDone = true;
        input.connection.write(N);
        continue;
      case "cancel": {
        if (p.key.length === 4) {
          const key = new DataView(p.key.buffer, p.key.byteOffset, 4).getInt32(0);
          const msg: CancelRequestMessage = { pgts: "cancel-request", pid: p.pid, key };
          // PostgreSQL's postmaster has signalled the backend when it closes
          // the request's connection, and clients send their next query only
          // after that close: wait until the postmaster says the signal went
          // (bounded: a request with a wrong key gets no answer).
          await new Promise<void>((resolve) => {
            const previous = env.onMessage;
            const timer = setTimeout(done, CANCEL_ACK_MS);
            function done() {
              clearTimeout(timer);
              env.onMessage = previous;
              resolve();
            }
            env.onMessage = (m) => {
              if ((m as { pgts?: unknown } | null)?.pgts === "cancel-done") done();
              else previous?.(m);
            };
            env.post(msg);
          });
        }
        input.connection.end(); // a FIN, as PostgreSQL closes it: clients wait for it
        return null;
      }
      case "startup":
        packet = p;
        break;
      default: {
        const never: never = p;
        throw new TypeError(`Unknown startup packet ${JSON.stringify(never)}`);
      }
    }
  }
  const conn = input.connection;
  if (packet.negotiate !== null) {
    const { version, unrecognizedOptions } = packet.negotiate;
    conn.write(
      MessageWriter.encode((w) => writeNegotiateProtocolVersion(w, version, unrecognizedOptions)),
    );
  }
  const { user, database } = packet;
  const remote = conn.remote;
  const host = remote.family === "unix" ? "[local]" : remote.address;
  const who = { host, user, database, ssl: ssl !== null };
  // log_line_prefix's %u %d %a %h %r from here on, as PostgreSQL's MyProcPort gives them.
  currentLogPrefix()?.setSession({
    user,
    database,
    applicationName: packet.applicationName ?? "",
    remoteHost: host,
    // A function: the port is a getpeername the connection may never need.
    remotePort: remote.family === "tcp" ? () => String(remote.port) : "",
  });

  const line = await hbaLineFor(ctx.hba, {
    type: remote.family === "unix" ? "local" : "host",
    database,
    user,
    ...(remote.family === "tcp" ? { address: remote.address } : {}),
    replication: packet.replication,
    ssl: ssl !== null,
  }, who);

  // clientcert (and the cert method, which implies verify-full): the
  // certificate was verified in the handshake if the client sent one.
  const clientcert = line.clientcert ?? "off";
  if (clientcert !== "off") {
    if (sslServer?.verifiesClients !== true) {
      throw new PgError(
        ERRCODE.CONFIG_FILE_ERROR,
        "client certificates can only be checked if a root certificate store is available",
        { severity: "FATAL" },
      );
    }
    if (ssl?.peer?.valid !== true) {
      throw new PgError(
        ERRCODE.INVALID_AUTHORIZATION_SPECIFICATION,
        "connection requires a valid client certificate",
        { severity: "FATAL" },
      );
    }
  }

  const role = await ctx.engine.lookupRole(user);
  let step: AuthStep;
  /** The SCRAM keys of a password login, for an engine that logs in elsewhere as the role. */
  let scramLogin: () => ScramLogin | null = () => null;
  if (line.method === "cert") {
    const why = certMismatch(ssl, user);
    if (why !== null) {
      throw withMatchedLine(
        new PgError(
          ERRCODE.INVALID_AUTHORIZATION_SPECIFICATION,
          `certificate authentication failed for user "${user}"`,
          { severity: "FATAL" },
        ),
        why,
        line,
      );
    }
    step = { done: true, send: MessageWriter.encode(writeAuthenticationOk) };
  } else {
    // An expired password (VALID UNTIL past) is no password: the exchange
    // goes on and fails as a wrong one does (PostgreSQL's get_role_password).
    const expired = role !== null && role.validUntil != null && role.validUntil < Date.now();
    const auth: ClientAuthentication = new ClientAuthentication({
      method: line.method,
      user,
      secret: expired ? null : role?.secret ?? null,
      channelBinding: ssl?.serverEndPoint ?? null,
    });
    step = await auth.start();
    scramLogin = () => auth.scramLogin;
    while (!step.done) {
      conn.write(step.send);
      const response = await ctx.input.authResponse(step.expect);
      if (response === null) return null; // client gave up, as psql does to ask for a password
      try {
        step = await auth.receive(response);
      } catch (e) {
        throw authFailed(
          e,
          role === null
            ? `Role "${user}" does not exist.`
            : expired
            ? `User "${user}" has an expired password.`
            : auth.logDetail,
          line,
        );
      }
    }
    if (clientcert === "verify-full") {
      // The password was right; the certificate must name the role too, and a
      // failure reads as the method's own (auth_failed).
      const why = certMismatch(ssl, user);
      if (why !== null) {
        const failed = line.method === "trust"
          ? new PgError(
            ERRCODE.INVALID_AUTHORIZATION_SPECIFICATION,
            `"trust" authentication failed for user "${user}"`,
            { severity: "FATAL" },
          )
          : passwordAuthFailedError(user);
        throw withMatchedLine(
          failed,
          `certificate validation (clientcert=verify-full) failed for user "${user}": CN mismatch\n${why}`,
          line,
        );
      }
    }
  }
  const login = checkRoleLogin(role, user);
  const authenticationOk = step.send;
  try {
    // A WAL sender is what a replication connection starts (walsender.c);
    // no engine of pgts has one, and served as an ordinary session the
    // client's CREATE_REPLICATION_SLOT or IDENTIFY_SYSTEM read as a syntax
    // error. Refused after authentication, where PostgreSQL's checks of a
    // WAL sender (the REPLICATION attribute, max_wal_senders) refuse it.
    if (packet.replication !== false) throw replicationRefused(packet.replication);
    const started = await startSession(env, ctx, packet, {
      superuser: login.superuser,
      useReserved: role?.useReservedConnections === true,
      ssl,
      scram: scramLogin(),
    });
    return { ...started, authenticationOk };
  } catch (e) {
    conn.write(authenticationOk);
    throw e;
  }
}

function replicationRefused(kind: true | "database"): PgError {
  return new PgError(
    ERRCODE.FEATURE_NOT_SUPPORTED,
    `${kind === "database" ? "logical" : "physical"} replication connections are not supported`,
    {
      severity: "FATAL",
      detail: "pgts starts no WAL sender: the replication protocol (CREATE_REPLICATION_SLOT, " +
        "START_REPLICATION, BASE_BACKUP) is not served.",
      hint: kind === "database"
        ? "Connect without the replication parameter."
        : "Take a base backup with pgts basebackup.",
    },
  );
}

/**
 * Why the client certificate does not name `user` (CheckCertAuth, with no
 * user name map), for the server log; null when it does.
 */
function certMismatch(ssl: SslSession | null, user: string): string | null {
  const cn = ssl?.peer?.cn ?? null;
  if (cn === null || cn === "") return "Client certificate contains no user name.";
  if (cn !== user) {
    return `Provided user name (${user}) and authenticated user name (${cn}) do not match.`;
  }
  return null;
}

/**
 * A failed password check as auth.c's auth_failed() reports it: one FATAL,
 * logged once (by the backend's exit path), whose detail says why and which
 * pg_hba.conf line matched, in the server log only. Other errors pass as
 * they are.
 */
function authFailed(e: unknown, why: string | undefined, line: HbaLine): unknown {
  if (!isPgError(e) || e.code !== ERRCODE.INVALID_PASSWORD) return e;
  return withMatchedLine(e, why, line);
}

/** `e` with the server-log detail auth_failed() adds: why, and the pg_hba.conf line. */
function withMatchedLine(e: PgError, why: string | undefined, line: HbaLine): PgError {
  const matched =
    `Connection matched file "${line.fileName}" line ${line.lineNumber}: "${line.rawLine}"`;
  return new PgError(e.code, e.message, {
    ...e.fields,
    severity: e.severity,
    detailLog: why === undefined ? matched : `${why}\n${matched}`,
  });
}

/** After authentication: the reserved-slot check and the engine session (InitPostgres's second half). */
async function startSession(
  env: ChildEnv,
  ctx: StartupContext,
  packet: StartupMessage,
  who: {
    superuser: boolean;
    useReserved: boolean;
    ssl: SslSession | null;
    scram: ScramLogin | null;
  },
): Promise<Omit<StartedSession, "authenticationOk">> {
  const { superuser, ssl } = who;
  const { user, database } = packet;
  // InitProcess's check: max_connections counts authenticated clients only.
  const claim = await ctx.link.claimConnection(superuser, who.useReserved);
  if (claim === "too-many") {
    throw new PgError(ERRCODE.TOO_MANY_CONNECTIONS, "sorry, too many clients already", {
      severity: "FATAL",
    });
  }
  if (claim === "reserved") {
    throw new PgError(
      ERRCODE.TOO_MANY_CONNECTIONS,
      "remaining connection slots are reserved for roles with the SUPERUSER attribute",
      { severity: "FATAL" },
    );
  }
  if (claim === "reserved-for-role") {
    throw new PgError(
      ERRCODE.TOO_MANY_CONNECTIONS,
      'remaining connection slots are reserved for roles with privileges of the "pg_use_reserved_connections" role',
      { severity: "FATAL" },
    );
  }

  const params: Record<string, string> = {};
  for (const [name, value] of packet.gucs) params[name] = value;
  if (packet.options !== undefined) params["options"] = packet.options;
  const remote = ctx.input.connection.remote;
  const { session, parameterStatus } = await ctx.engine.startSession({
    pid: env.pid,
    user,
    database,
    params,
    // The address itself, not a copy: an adapter may read the port only when
    // asked (pg_stat_activity's client_port), a getpeername() the connection
    // otherwise never needs.
    ...(remote.family === "tcp" ? { client: remote } : {}),
    ...(ssl !== null
      ? {
        ssl: {
          version: ssl.protocol,
          cipher: ssl.cipher,
          bits: ssl.bits,
          clientDn: ssl.peer?.cn != null ? `/CN=${ssl.peer.cn}` : null,
        },
      }
      : {}),
    ...(who.scram !== null ? { scram: who.scram } : {}),
  });
  const secretKey = nextCancelKey();
  const keyMessage: BackendKeyMessage = {
    pgts: "backend-key",
    key: secretKey,
    user,
    database,
    applicationName: packet.applicationName ?? "",
  };
  env.post(keyMessage);
  if (ctx.settings.logConnections === true) {
    const tls = ssl === null
      ? ""
      : ` SSL enabled (protocol=${ssl.protocol}, cipher=${ssl.cipher}, bits=${ssl.bits})`;
    const app = packet.applicationName === undefined
      ? ""
      : ` application_name=${packet.applicationName}`;
    ereport("LOG", `connection authorized: user=${user} database=${database}${app}${tls}`, LOG);
  }
  return { session, parameterStatus, secretKey };
}
