/**
 * A BEGIN answered without the engine. In PostgreSQL, BEGIN takes no lock
 * and waits for no one: psycopg and psycopg2, which open a transaction
 * before a connection's first statement, run `SELECT
 * pg_terminate_backend(…)` in one, and an administrator's connection so
 * ended a runaway statement at once. Here the BEGIN waited for the engine
 * that statement held, so nothing could stop it from such a connection;
 * and a BEGIN that found the engine free held it for the whole block, so
 * that connection, idle in its transaction after the signal, kept every
 * other session waiting until the engine hold timeout ended it.
 *
 * A lone `BEGIN` (or `BEGIN WORK`, `BEGIN TRANSACTION`, `START
 * TRANSACTION`) from idle is answered at once (BEGIN, ReadyForQuery 'T')
 * and run on the engine just before the session's next statement there
 * (session.ts). Until then the session is in its block without the
 * engine: a statement answered without the engine (offengine.ts) is
 * answered in it, an error aborts it ('E'), and a lone COMMIT or ROLLBACK
 * ends it without the engine. The BEGIN runs with the engine's clock held
 * at the time it was answered (wallclock.ts), so the transaction starts
 * then, as now() says in PostgreSQL.
 */

import { BE, FE } from "../../core/protocol/constants.ts";
import { concat, type Frame, message, readCString, readyForQuery, splitFrames } from "./wire.ts";

const PLAIN_BEGIN = /^\s*(?:begin(?:\s+(?:work|transaction))?|start\s+transaction)\s*;?\s*$/i;
const ENDS_BLOCK = /^\s*(commit|end|rollback|abort)(?:\s+(?:work|transaction))?\s*;?\s*$/i;

/**
 * The text of an input that is one statement without parameters: a simple
 * Query, or Parse, Bind, [Describe,] Execute and Sync of the unnamed
 * statement and portal (psycopg sends its BEGIN and COMMIT so); else null.
 */
function loneStatement(input: Uint8Array, frames: readonly Frame[]): string | null {
  const types = String.fromCharCode(...frames.map((f) => f.type));
  if (types === "Q") return readCString(input, frames[0]!.start + 5)[0];
  if (!/^PBD?ES$/.test(types)) return null;
  const parse = frames[0]!;
  const [name, afterName] = readCString(input, parse.start + 5);
  const [sql, afterSql] = readCString(input, afterName);
  if (name !== "" || input[afterSql] !== 0 || input[afterSql + 1] !== 0) return null;
  const bind = frames[1]!;
  const [portal, afterPortal] = readCString(input, bind.start + 5);
  const [statement, afterStatement] = readCString(input, afterPortal);
  if (portal !== "" || statement !== "") return null;
  // No parameter formats and no parameters.
  const formats = (input[afterStatement]! << 8) | input[afterStatement + 1]!;
  const at = afterStatement + 2 + 2 * formats;
  if (input[at] !== 0 || input[at + 1] !== 0) return null;
  return sql;
}

/** What the engine would answer `frames` (one lone statement) with: `tag`, then ReadyForQuery `status`. */
function answerOf(
  input: Uint8Array,
  frames: readonly Frame[],
  tag: string,
  status: "I" | "T",
): Uint8Array {
  const parts: Uint8Array[] = [];
  const complete = message(BE.CommandComplete, new TextEncoder().encode(`${tag}\0`));
  for (const f of frames) {
    switch (f.type) {
      case FE.Parse:
        parts.push(message(BE.ParseComplete));
        break;
      case FE.Bind:
        parts.push(message(BE.BindComplete));
        break;
      case FE.Describe:
        // A statement's: no parameters; either: no rows.
        if (input[f.start + 5] === 0x53) {
          parts.push(message(BE.ParameterDescription, Uint8Array.of(0, 0)));
        }
        parts.push(message(BE.NoData));
        break;
      case FE.Query:
      case FE.Execute:
        parts.push(complete);
        if (f.type === FE.Query) parts.push(readyForQuery(status));
        break;
      case FE.Sync:
        parts.push(readyForQuery(status));
    }
  }
  return concat(parts);
}

/** The input is one BEGIN without options (a Query, or a lone extended statement). */
export function isPlainBegin(input: Uint8Array, frames: readonly Frame[]): boolean {
  const sql = loneStatement(input, frames);
  return sql !== null && PLAIN_BEGIN.test(sql);
}

/** The answer to that BEGIN: its messages' completions, BEGIN, and ReadyForQuery 'T'. */
export function beginAnswer(input: Uint8Array, frames: readonly Frame[]): Uint8Array {
  return answerOf(input, frames, "BEGIN", "T");
}

/**
 * The answer to an input that is one COMMIT, END, ROLLBACK or ABORT (no
 * AND CHAIN, no savepoint; a Query or a lone extended statement) ending a
 * block that never reached the engine, from `status` ('T', or 'E' when an
 * error aborted it: its COMMIT says ROLLBACK, as PostgreSQL's does); else
 * null.
 */
export function endOfPendingBlock(
  input: Uint8Array,
  frames: readonly Frame[],
  status: "T" | "E",
): Uint8Array | null {
  const sql = loneStatement(input, frames);
  const m = sql === null ? null : ENDS_BLOCK.exec(sql);
  if (m === null) return null;
  const commits = /^(commit|end)$/i.test(m[1]!) && status === "T";
  return answerOf(input, frames, commits ? "COMMIT" : "ROLLBACK", "I");
}

/**
 * An answer given without the engine inside a pending block: its
 * ReadyForQuery says 'T', or 'E' when it has an ErrorResponse or an
 * earlier part of the answer had one (`failedBefore`).
 */
export function inPendingBlock(
  answer: Uint8Array,
  failedBefore: boolean,
): { bytes: Uint8Array; failed: boolean } {
  let failed = failedBefore;
  const bytes = answer.slice();
  // An error comes before the ReadyForQuery that ends its statement.
  for (const f of splitFrames(bytes) ?? []) {
    if (f.type === BE.ErrorResponse) failed = true;
    else if (f.type === BE.ReadyForQuery) bytes[f.start + 5] = (failed ? "E" : "T").charCodeAt(0);
  }
  return { bytes, failed };
}
