/**
 * The backend: PostgreSQL's PostgresMain, one per client connection.
 *
 * It owns its client from the startup packet to the end: runs SSL when the
 * client asks and the server has it (the TLS session lives here, where the
 * socket is), refuses GSS encryption with 'N', forwards a CancelRequest to the postmaster, runs
 * authentication (startup.ts), opens a session on the engine and then
 * relays whole frontend messages to it and its answers back. It owns a
 * memory-context tree: a command's frontend messages go to the engine as
 * the client framed them, a view of the chunk they arrived in; those that
 * span chunks are put together in MessageContext, which is reset when the
 * command's answer is complete, so they come from a context that never
 * grows past the largest command instead of from fresh allocations. A
 * session that relays bytes to another server (`EngineSession.relay`) gets
 * the client's bytes after startup as they arrive instead, unparsed.
 *
 * What it must never do: run SQL itself (the engine does), or let a message
 * of its session reach another (the engine's scheduler guarantees that; the
 * backend only ever talks to its own session).
 */

import { ereport, ERRCODE, isPgError, PgError } from "../elog.ts";
import { currentLogPrefix, remotePortOf } from "../log.ts";
import { startupTrace, startupTraceEnabled, startupTraceEnd } from "../starttrace.ts";
import type { Engine, EngineSession, ParameterStatusList } from "../engine/types.ts";
import type { HbaLine } from "../auth/hba.ts";
import { backendMemoryContexts, type MemoryContextTree } from "../mcxt/mod.ts";
import {
  FE,
  isCommError,
  MessageReader,
  MessageWriter,
  writeBackendKeyData,
  writeErrorResponse,
  writeParameterStatus,
  writeReadyForQuery,
} from "../protocol/mod.ts";
import { installBackendSignalHandlers } from "../postmaster/interrupt.ts";
import type { ChildEnv, Connection } from "../adapter.ts";
import { PostmasterLink } from "../postmaster/pmsignal.ts";
import { backendClient } from "../postmaster/firstpacket.ts";
import { ClientInput } from "./input.ts";
import { endsWithReadyForQuery } from "../protocol/pipeline.ts";
import { performStartup, type StartupSettings } from "./startup.ts";
import type { SslServer } from "./secure.ts";

export interface BackendOptions {
  readonly engine: Engine;
  readonly hba: readonly HbaLine[];
  readonly settings: StartupSettings;
  /** SSL, when the server has it on; absent or null: SSLRequest is answered 'N'. */
  readonly ssl?: SslServer | null;
}

const LOG = { category: "backend" } as const;

/** Exit codes as the postmaster reads them: 0 clean, 1 FATAL (normal for a backend). */
const EXIT_OK = 0;
const EXIT_FATAL = 1;

export async function postgresMain(env: ChildEnv, options: BackendOptions): Promise<number> {
  const conn = backendClient(env);
  if (conn === null) throw new TypeError("A backend needs a client connection");
  const link = new PostmasterLink(env);
  // PostmasterContext holds what the postmaster handed over; a backend that
  // is set up has no more use for it (PostgreSQL deletes it here too), so
  // the tree comes without it.
  const mcxt = backendMemoryContexts();
  const input = new ClientInput(
    conn,
    new MessageReader({
      allocate: (n) => mcxt.messageContext.alloc(n),
    }),
  );
  let session: EngineSession | null = null;
  // The client's connection is the input's: after an SSL handshake, the TLS
  // session's, not `conn`.
  const output = new ClientOutput(input);
  let terminating = false;
  let authInProgress = true;
  const signals = installBackendSignalHandlers(env, link, {
    client: () => input.connection,
    authInProgress: () => authInProgress,
    // die(): the running statement is cancelled and its transaction rolled
    // back; the client hears only the FATAL, not the cancel's ERROR.
    onTerminate: async () => {
      terminating = true;
      input.stop();
      output.dropped = true;
      const s = session;
      session = null;
      s?.cancel();
      await s?.close();
    },
  });
  env.onSignal("SIGINT", () => {
    session?.cancel();
    link.cancelSeen();
  });
  // A session the engine ends itself (idle_in_transaction_session_timeout,
  // engine failure): its FATAL already went to the client through onAsync;
  // the backend logs it, closes the connection and exits, as after any FATAL.
  let endedByEngine = false;
  let engineEndReason: PgError | null = null;
  let resolveEngineEnd: (code: number) => void = () => {};
  const engineEnd = new Promise<number>((resolve) => (resolveEngineEnd = resolve));
  const onEngineTerminate = (reason: PgError) => {
    if (endedByEngine || terminating) return;
    endedByEngine = true;
    // Logged by the main below, not here: this runs on whatever event the
    // engine ended the session on (another session's timer, under the
    // in-process adapter), and the line must be this backend's.
    engineEndReason = reason;
    input.stop();
    output.dropped = true;
    endConnection(input.connection);
    resolveEngineEnd(EXIT_FATAL);
  };
  env.abort.addEventListener("abort", () => input.stop(), { once: true });
  // A client that goes while its input runs (closed socket, killed client)
  // has it cancelled and rolled back at once, and the engine freed: nobody
  // will read the answer (PostgreSQL's client_connection_check_interval,
  // always on). An input that ended in Terminate was said goodbye to: it
  // runs to its end, as it would have before the close.
  const running: RunningInput = { active: false, goodbye: false, answered: false };
  let clientLost = false;
  input.onGone = () => {
    const s = session;
    if (s === null || !running.active || running.goodbye || terminating || endedByEngine) return;
    // psql -c: the answer's ReadyForQuery went out, the client sent
    // Terminate and closed, and the close came before the exec's end was
    // seen here. A goodbye, not a lost client.
    if (running.answered && input.saidGoodbye()) return;
    clientLost = true;
    output.dropped = true;
    void s.close().catch(() => {});
  };

  const acceptedAt = acceptedAtOf(env.params);
  const startedAt = acceptedAt ?? Date.now();
  let authorized = false;
  const main = (async (): Promise<number> => {
    const started = await performStartup(env, {
      input,
      link,
      engine: options.engine,
      hba: options.hba,
      settings: options.settings,
      ssl: options.ssl ?? null,
      acceptedAt,
    });
    if (started === null) return EXIT_OK; // cancel request, SSL refusal then EOF, timeout
    session = started.session;
    session.onAsync = (bytes) => output.write(bytes);
    session.onTerminate = onEngineTerminate;
    // AuthenticationOk, ParameterStatus..., BackendKeyData, ReadyForQuery: one write.
    const ok = started.authenticationOk;
    const status = encodedStatus(started.parameterStatus);
    const hello = new Uint8Array(ok.length + status.length + KEY_AND_READY_SIZE);
    hello.set(ok);
    hello.set(status, ok.length);
    const w = new MessageWriter({ initialSize: KEY_AND_READY_SIZE });
    writeBackendKeyData(w, env.pid, started.secretKey);
    writeReadyForQuery(w, "I");
    hello.set(w.take(), ok.length + status.length);
    authInProgress = false;
    authorized = true;
    input.connection.write(hello);
    startupTrace("backend: authenticated, session started on the engine");
    const ours = session;
    const relay = ours.relay;
    if (relay !== undefined) {
      return await relayLoop(output, input, (client, out) => relay.call(ours, client, out), mcxt);
    }
    return await commandLoop({ output, input, session, mcxt, running });
  })();

  let code: number;
  try {
    code = await Promise.race([main, signals.exitCode, engineEnd]);
    if (endedByEngine) code = EXIT_FATAL;
    // Stopping the input ends the command loop before die() has sent its
    // FATAL: wait for it, or the connection is closed before the FATAL.
    if (terminating) code = await signals.exitCode;
  } catch (e) {
    // After the engine ended the session, a failing exec is the same end.
    code = endedByEngine ? EXIT_FATAL : clientLost ? EXIT_FATAL : reportFatal(input.connection, e);
  }
  if (engineEndReason !== null) {
    const reason: PgError = engineEndReason;
    ereport("FATAL", reason.message, {
      ...LOG,
      code: reason.code,
      ...(reason.detail !== undefined ? { detail: reason.detail } : {}),
    });
  }
  if (clientLost) {
    ereport("FATAL", "connection to client lost", { ...LOG, code: ERRCODE.CONNECTION_FAILURE });
  }
  if (authorized && options.settings.logDisconnections === true) logDisconnection(startedAt);
  input.stop();
  const s = session as EngineSession | null;
  session = null;
  // A client that disconnects mid-transaction has it rolled back at once.
  await s?.close().catch(() => {});
  await options.engine.close().catch(() => {});
  // Over SSL the last messages (a FATAL) are encrypted after write() returns:
  // they must reach the socket before the backend ends and its process or
  // task drops the connection. Bounded, as a client may not be reading.
  if (input.connection !== conn) await drainedWithin(input.connection, 1000);
  // Nothing of this backend uses the tree any more: the next backend's.
  mcxt.recycle();
  return code;
}

/**
 * log_disconnections' line, as PostgreSQL's backend writes it at exit: the
 * session's time since its connection was accepted, its user, database and
 * client (the facts startup gave the log line prefix).
 */
function logDisconnection(startedAt: number): void {
  const ms = Math.max(0, Date.now() - startedAt);
  const s = currentLogPrefix()?.session ?? {};
  const two = (n: number) => String(n).padStart(2, "0");
  const port = remotePortOf(s);
  const time = `${Math.floor(ms / 3_600_000)}:${two(Math.floor(ms / 60_000) % 60)}:${
    two(Math.floor(ms / 1000) % 60)
  }.${String(ms % 1000).padStart(3, "0")}`;
  ereport(
    "LOG",
    `disconnection: session time: ${time} user=${s.user ?? ""} database=${s.database ?? ""} host=${
      s.remoteHost ?? ""
    }${port !== "" ? ` port=${port}` : ""}`,
    LOG,
  );
}

/** PMChildParams.acceptedAt, when the postmaster sent it. */
function acceptedAtOf(params: unknown): number | null {
  const v = (params as { acceptedAt?: unknown } | null)?.acceptedAt;
  return typeof v === "number" ? v : null;
}

async function drainedWithin(c: Connection, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([c.drained(), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

/** Whether an input is on the engine now, and whether it ends in Terminate. */
interface RunningInput {
  active: boolean;
  goodbye: boolean;
  /** A ReadyForQuery of its answer has been written. */
  answered: boolean;
}

/** BackendKeyData (13 bytes) and ReadyForQuery (6). */
const KEY_AND_READY_SIZE = 19;

/** ParameterStatus messages by list: sessions started alike share one list, so it is encoded once. */
const statusBytes = new WeakMap<ParameterStatusList, Uint8Array>();

function encodedStatus(list: ParameterStatusList): Uint8Array {
  let bytes = statusBytes.get(list);
  if (bytes === undefined) {
    const w = new MessageWriter({ initialSize: 1024 });
    for (const [name, value] of list) writeParameterStatus(w, name, value);
    bytes = w.take();
    statusBytes.set(list, bytes);
  }
  return bytes;
}

/** The engine's answers on their way to the client; cut off once the backend is dying. */
class ClientOutput {
  dropped = false;
  #input: ClientInput;
  constructor(input: ClientInput) {
    this.#input = input;
  }
  /** A promise while the socket's buffer is full: the engine holds back the rest of the answer. */
  write(bytes: Uint8Array): void | Promise<void> {
    if (this.dropped) return;
    const conn = this.#input.connection;
    if (!conn.write(bytes)) return conn.drained();
  }
}

/** How long a client that reads nothing may keep what was queued for it once its session ended. */
const CLOSE_FLUSH_MS = 5000;

/**
 * Closes the client's connection once its session ended: what is still
 * queued (the FATAL last) is sent if the client reads it within
 * CLOSE_FLUSH_MS, as an exiting PostgreSQL backend leaves its last bytes to
 * the kernel, and dropped otherwise: a client that reads nothing (the
 * session was ended for it) must not keep them in the server's memory.
 */
function endConnection(conn: Connection): void {
  conn.end();
  let flushed = false;
  void conn.drained().then(() => (flushed = true));
  setTimeout(() => {
    if (!flushed) conn.destroy();
  }, CLOSE_FLUSH_MS);
}

/** Sends a FATAL (when there is one to send), closes the client; the exit code. */
function reportFatal(conn: Connection, e: unknown): number {
  if (isCommError(e)) {
    // PostgreSQL only logs these (bad length words, EOF mid-message).
    ereport("LOG", e.message, LOG);
    conn.destroy();
    return EXIT_FATAL;
  }
  const err = isPgError(e) ? e : new PgError(
    ERRCODE.INTERNAL_ERROR,
    e instanceof Error ? e.message : String(e),
    { severity: "FATAL" },
  );
  if (!isPgError(e)) ereport("LOG", `backend failed: ${(e as Error)?.stack ?? String(e)}`, LOG);
  const detail = err.detailLog ?? err.detail;
  ereport(err.severity === "FATAL" ? "FATAL" : "ERROR", err.message, {
    ...LOG,
    code: err.code,
    ...(detail !== undefined ? { detail } : {}),
  });
  const w = new MessageWriter();
  writeErrorResponse(w, new PgError(err.code, err.message, { ...err.fields, severity: "FATAL" }));
  conn.write(w.take());
  conn.end();
  return EXIT_FATAL;
}

/** Bytes of the client's messages handed to the engine in one call (one message may be larger). */
const BATCH_MAX = 256 * 1024;

/**
 * The ReadCommand loop. Every whole message the client has sent so far is
 * handed to the engine in one call, as one array of the client's own frames
 * (joinFrames); MessageContext, where what had to be copied lives, is reset
 * once the engine has answered, the start of the next command. No copy in
 * the common case: one message, or a pipelined batch read in one chunk.
 */
async function commandLoop(
  { output, input, session, mcxt, running }: {
    output: ClientOutput;
    input: ClientInput;
    session: EngineSession;
    mcxt: MemoryContextTree;
    running: RunningInput;
  },
): Promise<number> {
  // The promise of a full socket goes back to the engine: it holds back the
  // rest of the answer until the client has read (a slow reader of a huge
  // result is not buffered here).
  const out = (bytes: Uint8Array) => {
    const full = output.write(bytes);
    if (endsWithReadyForQuery(bytes)) running.answered = true;
    return full;
  };
  for (;;) {
    mcxt.startCommand();
    const first = await input.nextFrame();
    if (first === null) return EXIT_OK; // client went away
    if (first[0] === FE.Terminate) return EXIT_OK;
    let batch: Uint8Array[] | null = null;
    let size = first.length;
    let terminate = false;
    // Bounded, so that a client sending faster than the engine takes (a
    // huge COPY) is held back by its socket, not buffered here.
    while (size < BATCH_MAX) {
      const m = input.pollFrame();
      if (m === null) break;
      if (m[0] === FE.Terminate) {
        terminate = true;
        break;
      }
      (batch ??= [first]).push(m);
      size += m.length;
    }
    const bytes = batch === null ? first : joinFrames(batch, size, mcxt);
    running.active = true;
    running.goodbye = terminate;
    running.answered = false;
    const traced = startupTraceEnabled();
    if (traced) startupTrace("backend: first query read");
    try {
      await session.exec(bytes, out);
    } finally {
      running.active = false;
    }
    if (traced) startupTraceEnd("backend: first query answered");
    if (terminate) return EXIT_OK;
  }
}

/**
 * The messages of one command as one array: a view of the chunk they came
 * in when they follow each other there (a pipelined batch read at once),
 * else copied into MessageContext, which the next command resets.
 */
function joinFrames(batch: Uint8Array[], size: number, mcxt: MemoryContextTree): Uint8Array {
  const first = batch[0]!;
  const buffer = first.buffer;
  let end = first.byteOffset + first.length;
  let contiguous = true;
  for (let i = 1; i < batch.length && contiguous; i++) {
    const m = batch[i]!;
    contiguous = m.buffer === buffer && m.byteOffset === end;
    end += m.length;
  }
  if (contiguous) return new Uint8Array(buffer, first.byteOffset, size);
  const bytes = mcxt.messageContext.alloc(size);
  let at = 0;
  for (const m of batch) {
    bytes.set(m, at);
    at += m.length;
  }
  return bytes;
}

/**
 * The pass-through loop: the client's bytes go to the session as they came,
 * with nothing parsed, copied or re-framed; the session finds the messages
 * (the server it relays to checks them) and says when a Terminate ends it.
 * Driven by the socket's callbacks, not by awaits: a statement costs the
 * session's one promise. Nothing is allocated per command, the chunks being
 * the socket's own, so MessageContext stays as startCommand left it: empty.
 */
function relayLoop(
  output: ClientOutput,
  input: ClientInput,
  relay: NonNullable<EngineSession["relay"]>,
  mcxt: MemoryContextTree,
): Promise<number> {
  const out = (bytes: Uint8Array) => output.write(bytes);
  mcxt.startCommand();
  return new Promise<number>((resolve, reject) => {
    let busy = false;
    let done = false;
    const answered = (more: boolean) => {
      busy = false;
      if (more) pump();
      else end(); // Terminate
    };
    const failed = (e: unknown) => {
      done = true;
      reject(e);
    };
    const end = () => {
      done = true;
      resolve(EXIT_OK);
    };
    // One relay in flight; what arrives meanwhile goes with the next.
    const pump = (): void => {
      if (busy || done) return;
      const client = input.takeRaw();
      if (client === null) {
        if (input.ended) end(); // client went away
        return;
      }
      busy = true;
      relay(client, out).then(answered, failed);
    };
    input.startRaw(pump);
    pump();
  });
}
