/**
 * A client's input as the transaction pool's upstream connection gets it,
 * the outbound half of pooled-session.ts (answers.ts is the inbound one):
 * the client's named statements renamed to the pool's names (`pgts_N`),
 * the Parse of a statement the connection lacks sent first (its answer
 * hidden from the client), the least recently used statements closed
 * beyond max_prepared_statements, and a Parse the connection has already
 * or the client's Close answered by pgts itself. For each message that
 * expects an answer there is one Request, in order: the relay's queue
 * (answers.ts), which says whose answer each upstream message is.
 *
 * Also the answers pgts gives with no connection at all: a prepare-only
 * input (`answerPrepareOnly`) and an input that cannot run
 * (`answerWithError`).
 *
 * It updates the statement maps it is given (the client's, the
 * connection's) and writes nothing: the session sends the parts.
 */

import { ERRCODE, isPgError, PgError } from "../../core/elog.ts";
import { BE, FE, parseErrorResponse } from "../../core/protocol/mod.ts";
import {
  concat,
  cstring,
  errorResponse,
  type Frame,
  message,
  readCString,
  readyForQuery,
} from "../pglite/wire.ts";
import { NONE_EFFECTS, type SqlEffects, sqlEffects } from "./effects.ts";
import type { Pooler, SharedStatement } from "./pool-objects.ts";
import type { PoolServer } from "./server.ts";

/** One request sent upstream (or answered by pgts), in order. */
export interface Request {
  /** The frontend message type it answers (P B D E C S Q F). */
  readonly kind: number;
  /** Its answer is not the client's: pgts added the request (a Parse or Close). */
  readonly hidden: boolean;
  /** Answered by pgts with these bytes when it reaches the head of the queue. */
  readonly synthetic: Uint8Array | null;
  /** Called with true when answered, false when it failed or the upstream skipped it. */
  readonly done: ((ok: boolean) => void) | null;
  /** For a renamed statement: [name upstream, the client's name], for error texts. */
  readonly rename: readonly [string, string] | null;
}

export const PARSE_COMPLETE = message(BE.ParseComplete);
export const CLOSE_COMPLETE = message(BE.CloseComplete);
const READY_IDLE = readyForQuery("I");
const STATEMENT = 0x53; // 'S' in Describe and Close

export interface RewriteContext {
  readonly server: PoolServer;
  /** The client's statements: its name → the pool's statement. */
  readonly statements: Map<string, SharedStatement>;
  readonly engine: Pooler;
  /** What a Query's or Parse's text does (SET, LISTEN...), or a statement's again at its Bind. */
  note(e: SqlEffects, sql: string | null): void;
}

const plain = (kind: number): Request => ({
  kind,
  hidden: false,
  synthetic: null,
  done: null,
  rename: null,
});

/** The pool's statement for a Parse body (its text and parameter types after the name). */
export function sharedStatement(
  engine: Pooler,
  body: Uint8Array,
  afterName: number,
): SharedStatement {
  const rest = body.subarray(afterName);
  const [sql] = readCString(body, afterName);
  return engine.statement(`${sql}\0${hex(rest.subarray(rest.indexOf(0)))}`, (n) => ({
    parse: message(FE.Parse, cstring(n), rest),
    effects: sqlEffects(sql),
  }));
}

/**
 * The bytes to send for `input` (whole frames, `frames` its split) and the
 * requests they make; `endsCopy` when it holds CopyDone or CopyFail.
 */
export function rewriteInput(
  input: Uint8Array,
  frames: readonly Frame[],
  ctx: RewriteContext,
): { parts: Uint8Array[]; requests: Request[]; endsCopy: boolean } {
  const { server, statements } = ctx;
  const parts: Uint8Array[] = [];
  const requests: Request[] = [];
  let endsCopy = false;
  /** Statements this input uses: not to be closed for room. */
  const used = new Set<string>();
  const makeRoom = () => {
    const max = ctx.engine.settings.maxPreparedStatements;
    for (const name of server.prepared.keys()) {
      if (server.prepared.size < max) break;
      if (used.has(name)) continue;
      server.prepared.delete(name);
      parts.push(message(FE.Close, Uint8Array.of(STATEMENT), cstring(name)));
      requests.push({ kind: FE.Close, hidden: true, synthetic: null, done: null, rename: null });
    }
  };
  /** The connection holds `st` now or will once `parse` (if sent) is answered. */
  const hold = (st: SharedStatement): boolean => {
    used.add(st.name);
    if (server.prepared.has(st.name)) {
      // Most recently used last.
      server.prepared.delete(st.name);
      server.prepared.set(st.name, true);
      return true;
    }
    makeRoom();
    server.prepared.set(st.name, true);
    parts.push(st.parse);
    return false;
  };
  const unhold = (st: SharedStatement) => (ok: boolean) => {
    if (!ok) server.prepared.delete(st.name);
  };
  /**
   * A Bind or Describe (`bytes`, already naming `st` as the connection
   * knows it) of the client's statement `name`: its hidden Parse goes first
   * where the connection lacks it, and errors name the client's statement.
   */
  const useStatement = (kind: number, st: SharedStatement, name: string, bytes: Uint8Array) => {
    if (!hold(st)) {
      requests.push({
        kind: FE.Parse,
        hidden: true,
        synthetic: null,
        done: unhold(st),
        rename: null,
      });
    }
    parts.push(bytes);
    requests.push({ kind, hidden: false, synthetic: null, done: null, rename: [st.name, name] });
  };
  for (const f of frames) {
    const whole = input.subarray(f.start, f.end);
    const body = input.subarray(f.start + 5, f.end);
    switch (f.type) {
      case FE.Query: {
        const [sql] = readCString(body, 0);
        ctx.note(sqlEffects(sql), sql);
        parts.push(whole);
        requests.push(plain(FE.Query));
        break;
      }
      case FE.Parse: {
        const [name, afterName] = readCString(body, 0);
        const [sql] = readCString(body, afterName);
        ctx.note(sqlEffects(sql), sql);
        if (name === "") {
          parts.push(whole);
          requests.push(plain(FE.Parse));
          break;
        }
        const st = sharedStatement(ctx.engine, body, afterName);
        statements.set(name, st);
        // A Parse that fails creates no statement, in PostgreSQL too.
        const forget = (ok: boolean) => {
          if (!ok && statements.get(name) === st) statements.delete(name);
        };
        if (hold(st)) {
          requests.push({
            kind: FE.Parse,
            hidden: false,
            synthetic: PARSE_COMPLETE,
            done: forget,
            rename: null,
          });
        } else {
          const held = unhold(st);
          requests.push({
            kind: FE.Parse,
            hidden: false,
            synthetic: null,
            done: (ok) => {
              held(ok);
              forget(ok);
            },
            rename: [st.name, name],
          });
        }
        break;
      }
      case FE.Bind: {
        const [portal, afterPortal] = readCString(body, 0);
        const [name, afterName] = readCString(body, afterPortal);
        const st = name === "" ? undefined : statements.get(name);
        if (st === undefined) {
          // The unnamed statement, or one the upstream will say does not exist.
          parts.push(whole);
          requests.push(plain(FE.Bind));
          break;
        }
        if (st.effects !== NONE_EFFECTS) ctx.note(st.effects, null);
        const bind = message(FE.Bind, cstring(portal), cstring(st.name), body.subarray(afterName));
        useStatement(FE.Bind, st, name, bind);
        break;
      }
      case FE.Describe:
      case FE.Close: {
        const [name] = readCString(body, 1);
        const st = body[0] === STATEMENT && name !== "" ? statements.get(name) : undefined;
        if (st === undefined) {
          parts.push(whole);
          requests.push(plain(f.type));
        } else if (f.type === FE.Close) {
          // The statement stays on the connection, for whoever prepares it next.
          statements.delete(name);
          requests.push({
            kind: FE.Close,
            hidden: false,
            synthetic: CLOSE_COMPLETE,
            done: null,
            rename: null,
          });
        } else {
          const describe = message(FE.Describe, Uint8Array.of(STATEMENT), cstring(st.name));
          useStatement(FE.Describe, st, name, describe);
        }
        break;
      }
      case FE.Execute:
      case FE.Sync:
      case FE.FunctionCall:
        parts.push(whole);
        requests.push(plain(f.type));
        break;
      case FE.CopyDone:
      case FE.CopyFail:
        endsCopy = true;
        parts.push(whole);
        break;
      default:
        // Flush, CopyData: no answer of their own.
        parts.push(whole);
    }
  }
  return { parts, requests, endsCopy };
}

/**
 * Named Parse and Close with Sync (libpq's PQprepare, pgbench -M prepared)
 * while no connection is free, answered at once: preparing never waits in
 * PostgreSQL, and a client that blocks on it (pgbench's thread) may hold up
 * the clients whose transactions hold every connection. The statement is
 * prepared upstream before its first Bind; an error in its text is the
 * answer to that Bind. Null for any other input.
 */
export function answerPrepareOnly(
  input: Uint8Array,
  frames: readonly Frame[],
  statements: Map<string, SharedStatement>,
  engine: Pooler,
): Uint8Array | null {
  let synced = false;
  for (const f of frames) {
    synced = f.type === FE.Sync;
    if (f.type === FE.Sync) continue;
    if (f.type === FE.Parse) {
      if (input[f.start + 5] === 0) return null; // the unnamed statement
    } else if (f.type === FE.Close) {
      if (input[f.start + 5] !== STATEMENT || input[f.start + 6] === 0) return null;
    } else return null;
  }
  if (!synced) return null;
  const parts: Uint8Array[] = [];
  for (const f of frames) {
    const body = input.subarray(f.start + 5, f.end);
    if (f.type === FE.Sync) parts.push(READY_IDLE);
    else if (f.type === FE.Close) {
      statements.delete(readCString(body, 1)[0]);
      parts.push(CLOSE_COMPLETE);
    } else {
      const [name, afterName] = readCString(body, 0);
      statements.set(name, sharedStatement(engine, body, afterName));
      parts.push(PARSE_COMPLETE);
    }
  }
  return concat(parts);
}

/**
 * The answer to an input that could not run (no connection, settings that
 * could not be restored): the error once per part the client waits on (each
 * Query, each run of extended messages up to its Sync), each followed by
 * ReadyForQuery; the session is between transactions, so 'I'.
 */
export function answerWithError(frames: readonly Frame[], e: PgError): Uint8Array {
  const err = errorResponse(e);
  const parts: Uint8Array[] = [];
  let open = false;
  for (const f of frames) {
    switch (f.type) {
      case FE.Query:
      case FE.FunctionCall:
        if (open) parts.push(err);
        open = false;
        parts.push(err, READY_IDLE);
        break;
      case FE.Sync:
        if (open) parts.push(err);
        open = false;
        parts.push(READY_IDLE);
        break;
      case FE.Flush:
      case FE.CopyData:
      case FE.CopyDone:
      case FE.CopyFail:
        break;
      default:
        open = true;
    }
  }
  return concat(parts.length === 0 ? [new Uint8Array(0)] : parts);
}

/** A failure to get a connection ready for an input as the ERROR that input is answered with. */
export function asError(e: unknown): PgError {
  if (isPgError(e)) {
    return e.severity === "ERROR"
      ? e
      : new PgError(e.code, e.message, { ...e.fields, severity: "ERROR" });
  }
  return new PgError(ERRCODE.CONNECTION_FAILURE, String(e));
}

/** Whether an ErrorResponse body is FATAL or PANIC (its 'V' or 'S' field). */
export function isFatal(body: Uint8Array): boolean {
  try {
    const f = parseErrorResponse(body);
    const sev = f.severityV ?? f.severity;
    return sev === "FATAL" || sev === "PANIC";
  } catch {
    return false;
  }
}

function hex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/**
 * What an input does to the client's unnamed statement: the bytes of its
 * last Parse of it (`parse`), whether it drops it (a Query), and whether
 * it uses it (Bind, Describe) before parsing it (`usesFirst`).
 */
export function unnamedUse(
  input: Uint8Array,
  frames: readonly Frame[],
): { parse: Uint8Array | null; drops: boolean; usesFirst: boolean } {
  let parse: Uint8Array | null = null;
  let drops = false;
  let usesFirst = false;
  for (const f of frames) {
    const at = f.start + 5;
    if (f.type === FE.Parse && input[at] === 0) parse = input.subarray(f.start, f.end);
    else if (f.type === FE.Query) {
      parse = null;
      drops = true;
    } else if (parse === null && !drops) {
      if (f.type === FE.Bind) {
        // The portal's name, then the statement's.
        const [, afterPortal] = readCString(input, at);
        if (input[afterPortal] === 0) usesFirst = true;
      } else if (f.type === FE.Describe && input[at] === STATEMENT && input[at + 1] === 0) {
        usesFirst = true;
      }
    }
  }
  return { parse, drops, usesFirst };
}

/** The Sync pgts adds after a describe-only input (core/protocol's describesOnly): its answer is not the client's. */
export const OWN_SYNC: Readonly<{ bytes: Uint8Array; request: Request }> = {
  bytes: message(FE.Sync),
  request: { kind: FE.Sync, hidden: true, synthetic: null, done: null, rename: null },
};

/** The client's unnamed statement put back first, its ParseComplete not the client's. */
export const HIDDEN_PARSE: Request = {
  kind: FE.Parse,
  hidden: true,
  synthetic: null,
  done: null,
  rename: null,
};
