/**
 * What a session answers without running its input on the engine, and the
 * errors it raises itself: an input refused with an error, the rest of its
 * batch skipped to Sync (postgres.c's ignore_till_sync); the messages
 * around a database command in an extended batch; the session's own
 * errors and warnings. A Parse/Close batch answered before it runs is
 * deferred.ts's.
 *
 * Pure functions of the input's frames and the session's transaction
 * status: nothing here holds the engine, runs SQL or keeps state.
 */

import { ERRCODE, isPgError, PgError } from "../../core/elog.ts";
import type { TransactionStatus } from "../../core/engine/types.ts";
import { BE, FE } from "../../core/protocol/constants.ts";
import { parseErrorResponse, pgErrorFromFields } from "../../core/protocol/backend-reader.ts";
import { publicText } from "./enginenames.ts";
import {
  concat,
  errorResponse,
  type Frame,
  message,
  readInt32,
  readyForQuery,
  splitFrames,
} from "./wire.ts";

/** The input's messages; input the protocol cannot frame ends the session (FATAL 08P01). */
export function inputFrames(input: Uint8Array): Frame[] {
  const frames = splitFrames(input);
  if (frames === null) {
    throw new PgError(ERRCODE.PROTOCOL_VIOLATION, "invalid frontend message framing", {
      severity: "FATAL",
    });
  }
  return frames;
}

/**
 * Answers an input pgts could not run with `err`, keeping the protocol in
 * step: each Query gets the error and ReadyForQuery; in an extended batch
 * the first message gets the error and the rest is skipped up to its Sync.
 * True when the input ends mid-batch: the session skips the client's next
 * messages up to a Sync.
 */
export function failInput(
  frames: readonly Frame[],
  err: PgError,
  options: { status: TransactionStatus; out: (b: Uint8Array) => void },
): boolean {
  const parts: Uint8Array[] = [];
  let skipping = false;
  for (const f of frames) {
    if (skipping) {
      if (f.type === FE.Sync) {
        parts.push(readyForQuery(options.status));
        skipping = false;
      }
    } else if (f.type === FE.Query) {
      parts.push(errorResponse(err), readyForQuery(options.status));
    } else if (f.type === FE.Sync) parts.push(readyForQuery(options.status));
    else if (f.type !== FE.Flush) {
      parts.push(errorResponse(err));
      skipping = true;
    }
  }
  if (parts.length > 0) options.out(concat(parts));
  return skipping;
}

/**
 * Why CREATE, ALTER or DROP DATABASE (`sql`, or "embedded" when the input
 * has more than the one statement) cannot be carried out by the cluster
 * now, or null: only as a query of its own, and not inside a transaction
 * block, since the cluster's work cannot be rolled back.
 */
export function databaseCommandRefusal(sql: string, status: TransactionStatus): PgError | null {
  const system = /^\s*alter\s+system\b/i.test(sql);
  if (sql === "embedded") {
    return new PgError(
      ERRCODE.FEATURE_NOT_SUPPORTED,
      "CREATE, ALTER and DROP DATABASE and ALTER SYSTEM must be sent as a query of their own",
      { detail: "pgts carries out these commands outside the engine's backend." },
    );
  }
  if (status === "I") return null;
  if (status === "E") {
    return new PgError(
      ERRCODE.IN_FAILED_SQL_TRANSACTION,
      "current transaction is aborted, commands ignored until end of transaction block",
    );
  }
  const what = system
    ? "ALTER SYSTEM"
    : `${/^\s*(\w+)/.exec(sql)?.[1]?.toUpperCase() ?? "ALTER"} DATABASE`;
  return new PgError(
    ERRCODE.ACTIVE_SQL_TRANSACTION,
    `${what} cannot run inside a transaction block`,
  );
}

/**
 * The answers to an extended batch's messages before its Execute (Parse,
 * [Describe,] Bind, [Describe,] Execute, Sync) as PostgreSQL gives them
 * for a utility statement with no parameters; none for a Query.
 */
function utilityBatchAnswers(input: Uint8Array, frames: readonly Frame[]): Uint8Array[] {
  return frames.slice(0, frames.length > 1 ? -2 : 0).flatMap((f) =>
    f.type === FE.Parse
      ? [message(BE.ParseComplete)]
      : f.type === FE.Bind
      ? [message(BE.BindComplete)]
      // A Describe of the statement ('S') also describes its parameters.
      : input[f.start + 5] === 0x53
      ? [message(BE.ParameterDescription, Uint8Array.of(0, 0)), message(BE.NoData)]
      : [message(BE.NoData)]
  );
}

/**
 * What an extended batch of one utility statement is answered before its
 * Execute's own messages (ParseComplete, BindComplete, NoData…), or null
 * for a Query.
 */
export function utilityBatchPrefix(input: Uint8Array, frames: readonly Frame[]): Uint8Array | null {
  const before = utilityBatchAnswers(input, frames);
  return before.length === 0 ? null : concat(before);
}

/**
 * The answer to a database command the cluster carries out (`run`): in an
 * extended batch, the answers before its Execute; then the command's own
 * messages, or its error; then ReadyForQuery with the status after it.
 */
export async function databaseCommandAnswer(
  input: Uint8Array,
  frames: readonly Frame[],
  options: { run: () => Promise<Uint8Array[]>; status: () => TransactionStatus },
): Promise<Uint8Array> {
  const before = utilityBatchAnswers(input, frames);
  try {
    const parts = await options.run();
    return concat([...before, ...parts, readyForQuery(options.status())]);
  } catch (e) {
    const err = isPgError(e) ? e : new PgError(ERRCODE.INTERNAL_ERROR, String(e));
    return concat([...before, errorResponse(err), readyForQuery(options.status())]);
  }
}

/** The first ErrorResponse in backend bytes, as a PgError naming the session's statements. */
export function firstPgError(buf: Uint8Array, prefix: string): PgError | null {
  for (let at = 0; at + 5 <= buf.length; at += 1 + readInt32(buf, at + 1)) {
    if (buf[at] !== BE.ErrorResponse) continue;
    const f = parseErrorResponse(buf.subarray(at + 5, at + 1 + readInt32(buf, at + 1)));
    f.message = publicText(f.message, prefix);
    if (f.detail !== undefined) f.detail = publicText(f.detail, prefix);
    return pgErrorFromFields(f);
  }
  return null;
}

/** The frames of an input after its first `answered` batches (each ends at a Query or a Sync). */
export function unanswered(frames: readonly Frame[], answered: number): readonly Frame[] {
  let from = 0;
  for (let n = 0; from < frames.length && n < answered; from++) {
    if (frames[from]!.type === FE.Sync || frames[from]!.type === FE.Query) n++;
  }
  return frames.slice(from);
}

/** What exec raises after close: one instance (an Error's stack costs on every connection). */
export const SESSION_CLOSED = new PgError(
  ERRCODE.CONNECTION_DOES_NOT_EXIST,
  "the session is closed",
  { severity: "FATAL" },
);

/** An error that ends the session: its own fields, or the thrown thing's text, as a FATAL. */
export function asFatal(e: unknown): PgError {
  return isPgError(e)
    ? new PgError(e.code, e.message, { ...e.fields, severity: "FATAL" })
    : new PgError(ERRCODE.INTERNAL_ERROR, String(e), { severity: "FATAL" });
}

/** pg_terminate_backend's FATAL, for the session that ran it on itself. */
export function adminShutdown(): PgError {
  return new PgError(
    ERRCODE.ADMIN_SHUTDOWN,
    "terminating connection due to administrator command",
    { severity: "FATAL" },
  );
}

export function queryCanceled(): PgError {
  return new PgError(ERRCODE.QUERY_CANCELED, "canceling statement due to user request");
}

/**
 * PostgreSQL's error when statement_timeout (57014) or lock_timeout (55P03)
 * ends a statement or its wait, with what pgts says of the wait.
 */
export function timeoutCanceled(
  bound: "statement" | "lock",
  fields: { readonly detail?: string; readonly hint?: string } = {},
): PgError {
  return new PgError(
    bound === "lock" ? ERRCODE.LOCK_NOT_AVAILABLE : ERRCODE.QUERY_CANCELED,
    `canceling statement due to ${bound} timeout`,
    fields,
  );
}

/**
 * statement_timeout, run out while the statement waited in the engine's
 * pipeline behind another session's (workerexecutor.ts): it never ran.
 */
export function waitedOutStatementTimeout(): PgError {
  return timeoutCanceled("statement", {
    detail:
      "The statement waited behind another session's statement for its statement_timeout: PGlite runs one session's statement at a time.",
  });
}

/**
 * A statement's wait for a lock that only a prepared transaction can hold
 * (lockwait.ts), ended after `ms`: PostgreSQL's lock_timeout error, with
 * what holds the lock.
 */
export function lockTimeout(ms: number): PgError {
  return timeoutCanceled("lock", {
    detail:
      `The lock is held by a prepared transaction; only COMMIT PREPARED or ROLLBACK PREPARED can release it, and they need the engine, which this statement held for ${ms} ms while it waited.`,
    hint:
      "Commit or roll back the prepared transaction (pg_prepared_xacts lists them); lock_timeout, or pgts.engine_wait_timeout when shorter, bounds such a wait.",
  });
}

export function closeAllRefused(): PgError {
  return new PgError(
    ERRCODE.FEATURE_NOT_SUPPORTED,
    "CLOSE ALL is not supported while other sessions have WITH HOLD cursors",
    {
      detail:
        "pgts runs every session on one PGlite backend, where CLOSE ALL would close the other sessions' cursors too.",
      hint: "Close this session's cursors by name.",
    },
  );
}

/** ALTER ROLE … IN DATABASE `database` (not the session's) inside a transaction block. */
export function roleInOtherDatabaseInBlock(database: string): PgError {
  return new PgError(
    ERRCODE.ACTIVE_SQL_TRANSACTION,
    "ALTER ROLE ... IN DATABASE of another database cannot run inside a transaction block",
    {
      detail:
        `Each database of a pgts cluster keeps its roles' settings in its own engine, and database "${database}" is not this session's.`,
      hint: `Run it outside the transaction block, or from a session of database "${database}".`,
    },
  );
}

export function tempTableWarning(): PgError {
  return new PgError(
    ERRCODE.WARNING,
    "temporary objects are shared by all sessions of this engine",
    {
      severity: "WARNING",
      detail:
        "pgts runs every session on one PGlite backend, which has one temporary schema; other sessions can see and drop this object.",
    },
  );
}
