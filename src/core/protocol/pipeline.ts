/**
 * Pipelined input: a client may send several queries before reading any
 * answer, and PostgreSQL answers each as soon as it is done. A relay that
 * gathers an input's answer to send it in one piece (fewer messages, fewer
 * wake-ups) must still send each ReadyForQuery of a pipelined input as it
 * comes, or the client cannot act on an answer (cancel the next query, say)
 * until the whole input has run. These two tests are what it needs; both
 * are cheap enough to run on every input and every chunk.
 */

import { BE, FE } from "./constants.ts";

/** The length word of the message whose type byte is at `at`. */
function lengthAt(input: Uint8Array, at: number): number {
  return ((input[at + 1]! << 24) | (input[at + 2]! << 16) | (input[at + 3]! << 8) |
    input[at + 4]!) >>> 0;
}

/** How many ReadyForQuery messages answer an input: its Query and Sync messages. */
export function answersExpected(input: Uint8Array): number {
  let n = 0;
  let at = 0;
  while (at + 5 <= input.length) {
    const type = input[at]!;
    if (type === FE.Query || type === FE.Sync) n++;
    at += 1 + lengthAt(input, at);
  }
  return n;
}

/**
 * Where an input's first Flush that an Execute follows ends (the offset of
 * the message after it), or -1. What comes before it is answered before
 * that Execute runs, as PostgreSQL flushes its output at a Flush: pg-cursor
 * sends Parse/Bind/Describe/Flush and Execute/Flush at once, and a client
 * that had not seen its RowDescription while the statement ran got out of
 * step when it closed and cancelled the cursor meanwhile.
 */
export function flushBeforeExecute(input: Uint8Array): number {
  let flushEnd = -1;
  let at = 0;
  while (at + 5 <= input.length) {
    const type = input[at]!;
    if (type === FE.Execute && flushEnd >= 0) return flushEnd;
    at += 1 + lengthAt(input, at);
    if (type === FE.Flush && flushEnd < 0) flushEnd = at;
  }
  return -1;
}

/** Whether a chunk of backend bytes ends with a whole ReadyForQuery ('Z', length 5, status). */
export function endsWithReadyForQuery(chunk: Uint8Array): boolean {
  const at = chunk.length - 6;
  return at >= 0 && chunk[at] === BE.ReadyForQuery && chunk[at + 1] === 0 &&
    chunk[at + 2] === 0 && chunk[at + 3] === 0 && chunk[at + 4] === 5;
}

/**
 * Parse, Describe and Close messages up to a Flush, with no Sync: a client
 * learning a statement's types before it binds (postgres.js 4 does so for
 * every new statement, and may look the types up on another connection
 * before it goes on). From idle they do nothing but parse, so both engines
 * run them with a Sync of pgts's own and give the backend (or the pooled
 * connection) back: PostgreSQL's other backends never wait on a backend
 * that has only parsed.
 */
export function describesOnly(frames: readonly { readonly type: number }[]): boolean {
  if (frames.length < 2 || frames[frames.length - 1]!.type !== FE.Flush) return false;
  return frames.every((f) =>
    f.type === FE.Parse || f.type === FE.Describe || f.type === FE.Close || f.type === FE.Flush
  );
}

/**
 * Close messages and nothing else, with no Flush or Sync: pg-cursor closes
 * a failed cursor's portal so, after the Sync that ended its batch.
 * PostgreSQL starts no transaction for a Close (it keeps the CloseComplete
 * until the next Flush or Sync), so from idle such an input holds nothing.
 */
export function closesOnly(frames: readonly { readonly type: number }[]): boolean {
  return frames.length > 0 && frames.every((f) => f.type === FE.Close);
}

/**
 * Where the Close messages after an input's last Sync begin (closesOnly),
 * when that is how the input ends after a Sync; else -1.
 */
export function closesAfterSync(frames: readonly { readonly type: number }[]): number {
  let at = frames.length;
  while (at > 0 && frames[at - 1]!.type === FE.Close) at--;
  return at < frames.length && at > 0 && frames[at - 1]!.type === FE.Sync ? at : -1;
}
