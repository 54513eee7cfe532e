/**
 * A backend's first steps (PostgreSQL's backend_startup.c and the part of
 * InitPostgres that checks who is connecting): read the startup packet,
 * refuse SSL and GSS encryption with 'N', pass a CancelRequest to the
 * postmaster, find the pg_hba.conf line, authenticate the role, apply the
 * reserved-slot rule, and open the engine session.
 *
 * `authentication_timeout` bounds all of it: a client that sends nothing,
 * or stalls in the exchange, is dropped. Every refusal is a FATAL PgError
 * with PostgreSQL's SQLSTATE and text; the caller reports it.
 */

import { ereport, ERRCODE, isPgError, PgError } from "../elog.ts";
import {
  ClientAuthentication,
  type HbaLine,
  hbaRejectError,
  matchHba,
  noHbaEntryError,
} from "../auth/mod.ts";
import type { Engine, EngineSession, ParameterStatusList } from "../engine/types.ts";
import {
  MessageWriter,
  parseStartupPacket,
  type StartupMessage,
  writeNegotiateProtocolVersion,
} from "../protocol/mod.ts";
import type { ChildEnv } from "../postmaster/launch.ts";
import type { PostmasterLink } from "../postmaster/pmsignal.ts";
import type { ClientInput } from "./input.ts";

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
}

export interface StartupContext {
  readonly input: ClientInput;
  readonly link: PostmasterLink;
  readonly engine: Engine;
  readonly hba: readonly HbaLine[];
  readonly settings: StartupSettings;
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

/** A backend's request to cancel another backend's query, for the postmaster to route. */
export interface CancelRequestMessage {
  readonly pgts: "cancel-request";
  readonly pid: number;
  readonly key: number;
}

/** A backend telling the postmaster its cancel key, right after it chose it. */
export interface BackendKeyMessage {
  readonly pgts: "backend-key";
  readonly key: number;
  readonly user: string;
  readonly database: string;
  readonly applicationName: string;
}

const LOG = { category: "backend" } as const;
const N = new Uint8Array([0x4e]);

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
  const timer = setTimeout(() => {
    timedOut = true;
    ereport("LOG", "canceling authentication due to timeout", LOG);
    ctx.input.stop();
    ctx.input.connection.destroy();
  }, ctx.settings.authenticationTimeoutMs);
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
  const conn = ctx.input.connection;
  let packet: StartupMessage | null = null;
  while (packet === null) {
    const body = await ctx.input.startupPacket();
    if (body === null) return null;
    const p = parseStartupPacket(body);
    switch (p.kind) {
      case "ssl":
      case "gssenc":
        conn.write(N);
        continue;
      case "cancel": {
        if (p.key.length === 4) {
          const key = new DataView(p.key.buffer, p.key.byteOffset, 4).getInt32(0);
          const msg: CancelRequestMessage = { pgts: "cancel-request", pid: p.pid, key };
          env.post(msg);
        }
        conn.end(); // a FIN, as PostgreSQL closes it: clients wait for it
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
  if (packet.negotiate !== null) {
    const { version, unrecognizedOptions } = packet.negotiate;
    conn.write(
      MessageWriter.encode((w) => writeNegotiateProtocolVersion(w, version, unrecognizedOptions)),
    );
  }
  const { user, database } = packet;
  const remote = conn.remote;
  const host = remote.family === "unix" ? "[local]" : remote.address;
  const who = { host, user, database };

  const line = await matchHba(ctx.hba, {
    type: remote.family === "unix" ? "local" : "host",
    database,
    user,
    ...(remote.family === "tcp" ? { address: remote.address } : {}),
    replication: packet.replication,
  });
  if (line === null) throw noHbaEntryError(who);
  if (line.method === "reject") throw hbaRejectError(who);

  const role = await ctx.engine.lookupRole(user);
  const auth = new ClientAuthentication({
    method: line.method,
    user,
    secret: role?.secret ?? null,
  });
  let step = await auth.start();
  while (!step.done) {
    conn.write(step.send);
    const response = await ctx.input.authResponse(step.expect);
    if (response === null) return null; // client gave up, as psql does to ask for a password
    try {
      step = await auth.receive(response);
    } catch (e) {
      throw authFailed(e, role === null ? `Role "${user}" does not exist.` : auth.logDetail, line);
    }
  }
  // Authentication can succeed for a role that does not exist (trust): the
  // role check comes after it, as in InitPostgres.
  if (role === null) {
    throw new PgError(
      ERRCODE.INVALID_AUTHORIZATION_SPECIFICATION,
      `role "${user}" does not exist`,
      { severity: "FATAL" },
    );
  }
  if (!role.canLogin) {
    throw new PgError(
      ERRCODE.INVALID_AUTHORIZATION_SPECIFICATION,
      `role "${user}" is not permitted to log in`,
      { severity: "FATAL" },
    );
  }
  const authenticationOk = step.send;
  try {
    const started = await startSession(env, ctx, packet, role.superuser);
    return { ...started, authenticationOk };
  } catch (e) {
    conn.write(authenticationOk);
    throw e;
  }
}

/**
 * A failed password check as auth.c's auth_failed() reports it: one FATAL,
 * logged once (by the backend's exit path), whose detail says why and which
 * pg_hba.conf line matched, in the server log only. Other errors pass as
 * they are.
 */
function authFailed(e: unknown, why: string | undefined, line: HbaLine): unknown {
  if (!isPgError(e) || e.code !== ERRCODE.INVALID_PASSWORD) return e;
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
  superuser: boolean,
): Promise<Omit<StartedSession, "authenticationOk">> {
  const { user, database } = packet;
  const reserved = ctx.settings.superuserReservedConnections;
  if (!superuser && reserved > 0 && (await ctx.link.freeBackendSlots()) < reserved) {
    throw new PgError(
      ERRCODE.TOO_MANY_CONNECTIONS,
      "remaining connection slots are reserved for roles with the SUPERUSER attribute",
      { severity: "FATAL" },
    );
  }

  const params: Record<string, string> = {};
  for (const [name, value] of packet.gucs) params[name] = value;
  if (packet.options !== undefined) params["options"] = packet.options;
  const { session, parameterStatus } = await ctx.engine.startSession({
    pid: env.pid,
    user,
    database,
    params,
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
    ereport("LOG", `connection authorized: user=${user} database=${database}`, LOG);
  }
  return { session, parameterStatus, secretKey };
}
