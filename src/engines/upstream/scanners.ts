/**
 * The two header walkers of the session-mode relay (session.ts): they find
 * message boundaries in bytes split anywhere, without copying or
 * re-framing, and report only what the session must know — how many
 * ReadyForQuery messages the client's input owes, and which backend
 * messages end an answer (ReadyForQuery, CopyInResponse) or say why the
 * upstream hung up (a FATAL ErrorResponse). Neither writes anywhere.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import type { TransactionStatus } from "../../core/engine/types.ts";
import { BE, FE, parseErrorResponse, pgErrorFromFields } from "../../core/protocol/mod.ts";

/** Longest ErrorResponse body kept to learn a FATAL's code; longer ones are relayed only. */
const MAX_ERROR_CAPTURE = 16384;
/** PostgreSQL's own limit on a message it sends (PQ_LARGE_MESSAGE_LIMIT is for input). */
const MAX_BACKEND_MESSAGE = 0x7fffffff;

/**
 * Walks frontend message headers across chunk boundaries, the client's side
 * of BackendScanner: after each `scan`, `count` is how many ReadyForQuery
 * messages the whole messages it completed owe (one per Query, Sync and
 * FunctionCall, except in COPY IN, where the upstream ignores Sync),
 * `endsCopy` whether one was CopyDone or CopyFail, and `answeredEnd` the
 * offset past the last one owed. A message counts when its last byte goes
 * by, since the upstream answers nothing before that. A length word below 4
 * loses the thread: the rest goes by uncounted, and the upstream, which
 * checks lengths itself, ends the session with its FATAL.
 */
export class FrontendScanner {
  count = 0;
  endsCopy = false;
  answeredEnd = 0;
  #type = 0;
  /** Bytes of the current message's length word read; -1 at a message boundary. */
  #lengthRead = -1;
  #length = 0;
  #remaining = 0;
  #lost = false;

  /** At a message boundary, with the thread kept: a Terminate may follow. */
  get atBoundary(): boolean {
    return this.#lengthRead < 0 && !this.#lost;
  }

  /** Scans `chunk`; returns the offset of a Terminate that starts a message, else its length. */
  scan(chunk: Uint8Array, copyIn: boolean): number {
    this.count = 0;
    this.endsCopy = false;
    this.answeredEnd = 0;
    const n = chunk.length;
    if (this.#lost) return n;
    let inCopy = copyIn;
    let at = 0;
    while (at < n) {
      if (this.#lengthRead < 0) {
        const type = chunk[at] as number;
        if (type === FE.Terminate) return at;
        this.#type = type;
        this.#lengthRead = 0;
        this.#length = 0;
        at++;
        continue;
      }
      if (this.#lengthRead < 4) {
        this.#length = (this.#length << 8) | (chunk[at] as number);
        at++;
        if (++this.#lengthRead < 4) continue;
        if (this.#length < 4) {
          this.#lost = true;
          return n;
        }
        this.#remaining = this.#length - 4;
        if (this.#remaining > 0) continue;
      } else {
        const step = Math.min(this.#remaining, n - at);
        at += step;
        this.#remaining -= step;
        if (this.#remaining > 0) continue;
      }
      // The message ends at `at`.
      this.#lengthRead = -1;
      const type = this.#type;
      if (type === FE.CopyDone || type === FE.CopyFail) {
        inCopy = false;
        this.endsCopy = true;
      } else if (type === FE.Query || type === FE.FunctionCall || (type === FE.Sync && !inCopy)) {
        this.count++;
        this.answeredEnd = at;
      }
    }
    return n;
  }
}

/**
 * Walks backend message headers across chunk boundaries without copying:
 * it keeps only a partial header, the ReadyForQuery status byte, and the
 * body of an ErrorResponse (to learn a FATAL's code when the upstream then
 * hangs up).
 */
export class BackendScanner {
  /** The last FATAL ErrorResponse the upstream sent, if any. */
  lastFatal: PgError | null = null;

  #onReadyForQuery: (status: TransactionStatus) => void;
  #onCopyIn: () => void;
  #header = new Uint8Array(5);
  #headerLen = 0;
  /** Body bytes still to pass of the current message. */
  #remaining = 0;
  #type = 0;
  #error: Uint8Array | null = null;
  #errorLen = 0;

  constructor(hooks: {
    onReadyForQuery: (status: TransactionStatus) => void;
    onCopyIn: () => void;
  }) {
    this.#onReadyForQuery = hooks.onReadyForQuery;
    this.#onCopyIn = hooks.onCopyIn;
  }

  /** Scans the whole range; a PgError if the bytes cannot be PostgreSQL's. */
  scan(chunk: Uint8Array, from: number, to: number): PgError | null {
    const r = this.scanUntil(chunk, from, () => false, to);
    return typeof r === "number" ? null : r;
  }

  /**
   * Scans from `from` and returns the offset just past the first message
   * after which `stop()` is true (or the end of the chunk).
   */
  scanUntil(
    chunk: Uint8Array,
    from: number,
    stop: () => boolean,
    to: number = chunk.length,
  ): number | PgError {
    let at = from;
    while (at < to) {
      if (this.#remaining > 0) {
        const n = Math.min(this.#remaining, to - at);
        this.#capture(chunk, at, n);
        at += n;
        this.#remaining -= n;
        if (this.#remaining === 0) {
          this.#complete(chunk[at - 1] as number);
          if (stop()) return at;
        }
        continue;
      }
      // A header, possibly split across chunks (kept in #header then).
      let h = chunk;
      let hat = at;
      if (this.#headerLen === 0 && at + 5 <= to) {
        at += 5;
      } else {
        const n = Math.min(5 - this.#headerLen, to - at);
        this.#header.set(chunk.subarray(at, at + n), this.#headerLen);
        this.#headerLen += n;
        at += n;
        if (this.#headerLen < 5) break;
        this.#headerLen = 0;
        h = this.#header;
        hat = 0;
      }
      this.#type = h[hat] as number;
      const len = ((h[hat + 1] as number) << 24 | (h[hat + 2] as number) << 16 |
        (h[hat + 3] as number) << 8 | (h[hat + 4] as number)) >>> 0;
      if (len < 4 || len > MAX_BACKEND_MESSAGE) {
        return new PgError(
          ERRCODE.PROTOCOL_VIOLATION,
          "terminating connection because of an invalid message from the upstream server",
          {
            severity: "FATAL",
            detail: `Message type 0x${this.#type.toString(16)} has invalid length ${len}.`,
          },
        );
      }
      this.#remaining = len - 4;
      if (this.#type === BE.ErrorResponse && this.#remaining <= MAX_ERROR_CAPTURE) {
        this.#error = new Uint8Array(this.#remaining);
        this.#errorLen = 0;
      }
      if (this.#remaining === 0) {
        this.#complete(-1);
        if (stop()) return at;
      }
    }
    return at;
  }

  #capture(chunk: Uint8Array, at: number, n: number): void {
    if (this.#error === null) return;
    this.#error.set(chunk.subarray(at, at + n), this.#errorLen);
    this.#errorLen += n;
  }

  /** A message ended; `last` is its last body byte (ReadyForQuery's status), -1 if empty. */
  #complete(last: number): void {
    switch (this.#type) {
      case BE.ReadyForQuery: {
        const s = String.fromCharCode(last);
        this.#onReadyForQuery(s === "T" || s === "E" ? s : "I");
        break;
      }
      case BE.CopyInResponse:
      case BE.CopyBothResponse:
        this.#onCopyIn();
        break;
      case BE.ErrorResponse: {
        const body = this.#error;
        this.#error = null;
        if (body === null) break;
        try {
          const e = pgErrorFromFields(parseErrorResponse(body));
          if (e.severity === "FATAL" || e.severity === "PANIC") this.lastFatal = e;
        } catch {
          // A malformed ErrorResponse is relayed; the client's driver judges it.
        }
        break;
      }
    }
  }
}
