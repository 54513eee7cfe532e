/**
 * The engine's answer to one session's input, on its way to that session.
 *
 * Passes backend bytes through in the largest runs it can, and stops only at
 * the messages the engine layer must see or change: ReadyForQuery (the
 * session's transaction status), CommandComplete ROLLBACK and ErrorResponse
 * (whether pending LISTENs took effect), ParameterStatus (the session's
 * settings changed, even where the text scan could not see it), CopyInResponse (the session keeps
 * the engine until the copy ends), NotificationResponse (routed to the
 * listening sessions, never blindly to this one) and the responses to
 * messages the layer injected (dropped). Statement-name prefixes are taken
 * out of error texts. What the session must tell its client of changed
 * settings (ParameterStatus, paramstatus.ts) goes just before a
 * ReadyForQuery.
 *
 * It never reorders messages and never sends one session's notification to
 * a session that is not listening.
 */

import type { BackendOutput } from "../../core/engine/types.ts";
import { BE, PG_DIAG } from "../../core/protocol/constants.ts";
import { TERMINATE_SELF_ROUTINE } from "./backends.ts";
import { publicText } from "./enginenames.ts";
import { concat, editNoticeText, errorField, readInt32 } from "./wire.ts";

const ROLLBACK_TAG = new TextEncoder().encode("ROLLBACK\0");
/** CommandComplete RESET, whole. */
const RESET_COMPLETE = new Uint8Array([
  BE.CommandComplete,
  0,
  0,
  0,
  10,
  ...new TextEncoder().encode("RESET\0"),
]);

export interface OutputOptions {
  readonly prefix: string;
  /** Maps an error's position back to the client's text where pgts rewrote it (textedits.ts). */
  readonly position?: ((p: number) => number) | undefined;
  /** CommandCompletes (their order in the answer, from 0) whose tag becomes RESET (naming.ts's resetTags). */
  readonly resetTags?: readonly number[];
  /** Where the session's bytes go; a promise back: full (see BackendOutput). */
  readonly out: BackendOutput;
  /** Routes a NotificationResponse; returns it (with the sender's pid) when this session listens too. */
  readonly notify: (msg: Uint8Array) => Uint8Array | null;
  /** Type byte of one injected response to drop (ParseComplete or CloseComplete), or 0. */
  readonly dropFirst: number;
  /** Keep the first CopyInResponse from the session (`copyInResponse`) instead of passing it on. */
  readonly holdCopyIn?: boolean;
  /**
   * Whether a cancel of this input was statement_timeout's rather than a
   * client's: the engine's 57014 then says so, as PostgreSQL's does.
   */
  readonly timedOut?: () => boolean;
  /**
   * The ErrorResponse that replaces the engine's 57014 when this input was
   * cancelled for a lock wait (lockwait.ts); null when it was not.
   */
  readonly lockTimedOut?: () => Uint8Array | null;
  /** Called with each ErrorResponse and NoticeResponse the session receives, as it receives it. */
  readonly onReport?: (msg: Uint8Array) => void;
  /** Called at a CopyInResponse the session receives (a fed COPY has begun). */
  readonly onCopyIn?: () => void;
  /**
   * Called at each CommandComplete, ErrorResponse and ReadyForQuery, with
   * its type: a fed COPY is over, however it ended (a Query's goes on to
   * its next statement after a CommandComplete).
   */
  readonly onStatementEnd?: (type: number) => void;
  /**
   * Called at each ReadyForQuery: messages to send just before it (the
   * ParameterStatus of settings the input changed, paramstatus.ts), or null.
   */
  readonly beforeReadyForQuery?: () => Uint8Array | null;
  /**
   * The answer's ReadyForQuery is to a Sync pgts added (pipeline.ts's
   * describesOnly): noted, not sent.
   */
  readonly holdReadyForQuery?: boolean;
}

const USER_CANCEL_TEXT = "canceling statement due to user request";
const TIMEOUT_TEXT = "canceling statement due to statement timeout";

export class OutputFilter {
  #o: OutputOptions;
  #carry: Uint8Array | null = null;
  #drop: number;
  lastStatus: "I" | "T" | "E" | null = null;
  /** ReadyForQuery messages seen. */
  zCount = 0;
  /** CommandComplete messages seen. */
  #completes = 0;
  /** The first CopyInResponse, when `holdCopyIn` kept it from the session. */
  copyInResponse: Uint8Array | null = null;
  endsWithZ = false;
  copyIn = false;
  sawError = false;
  /**
   * The answer's last statement ended in an error or with the tag
   * ROLLBACK: a transaction it ended (at ReadyForQuery 'I') rolled back.
   */
  rolledBack = false;
  /** A ParameterStatus: the input changed a reported setting, however it was spelled. */
  sawParameterStatus = false;
  /**
   * The session ended itself (pg_terminate_backend of its own pid): from
   * that statement's ERROR on nothing reaches the session; the session
   * ends with the FATAL instead, as a PostgreSQL backend does.
   */
  terminatedSelf = false;

  constructor(options: OutputOptions) {
    this.#o = options;
    this.#drop = options.dropFirst;
  }

  /** Takes a chunk of the engine's answer; a promise back when the session's side is full. */
  push(chunk: Uint8Array): void | Promise<void> {
    let full: void | Promise<void> = undefined;
    const send = (bytes: Uint8Array) => {
      const r = this.#o.out(bytes);
      if (r !== undefined) full = r;
    };
    let buf = chunk;
    if (this.#carry !== null) {
      buf = concat([this.#carry, chunk]);
      this.#carry = null;
    }
    let at = 0;
    let run = 0; // start of the pass-through run
    const flush = (end: number) => {
      if (end > run && !this.terminatedSelf) {
        send(run === 0 && end === buf.length ? buf : buf.subarray(run, end));
      }
    };
    while (buf.length - at >= 5) {
      const len = readInt32(buf, at + 1);
      const end = at + 1 + len;
      if (end > buf.length) break;
      const type = buf[at]!;
      this.endsWithZ = type === BE.ReadyForQuery;
      if (type === this.#drop) {
        // The answer to a message the engine layer injected: not the client's.
        flush(at);
        run = end;
        this.#drop = 0;
        if (type === BE.CopyInResponse) this.copyIn = true;
        at = end;
        continue;
      }
      switch (type) {
        case BE.ReadyForQuery: {
          const before = this.terminatedSelf ? null : this.#o.beforeReadyForQuery?.() ?? null;
          if (before !== null) {
            flush(at);
            send(before);
            run = at;
          }
          if (this.#o.holdReadyForQuery) {
            flush(at);
            run = end;
          }
          this.zCount++;
          this.lastStatus = String.fromCharCode(buf[at + 5]!) as "I" | "T" | "E";
          this.copyIn = false;
          this.#drop = 0;
          this.#o.onStatementEnd?.(type);
          break;
        }
        case BE.CopyInResponse:
          this.copyIn = true;
          this.#o.onCopyIn?.();
          if (this.#o.holdCopyIn && this.copyInResponse === null) {
            flush(at);
            this.copyInResponse = buf.slice(at, end);
            run = end;
          }
          break;
        case BE.ParameterStatus:
          this.sawParameterStatus = true;
          break;
        case BE.CommandComplete:
          this.rolledBack = len === 4 + ROLLBACK_TAG.length &&
            startsWith(buf, at + 5, ROLLBACK_TAG);
          if (this.#o.resetTags?.includes(this.#completes) === true && !this.terminatedSelf) {
            flush(at);
            send(RESET_COMPLETE);
            run = end;
          }
          this.#completes++;
          this.#o.onStatementEnd?.(type);
          break;
        case BE.ErrorResponse:
        case BE.NoticeResponse: {
          if (type === BE.ErrorResponse) {
            this.sawError = true;
            this.rolledBack = true;
            this.#drop = 0;
            this.#o.onStatementEnd?.(type);
          }
          const msg = buf.subarray(at, end);
          if (
            type === BE.ErrorResponse &&
            errorField(msg, PG_DIAG.SOURCE_FUNCTION) === TERMINATE_SELF_ROUTINE
          ) {
            flush(at);
            this.terminatedSelf = true;
            break;
          }
          if (this.terminatedSelf) break;
          const lockError = type === BE.ErrorResponse &&
              errorField(msg, PG_DIAG.MESSAGE_PRIMARY) === USER_CANCEL_TEXT
            ? this.#o.lockTimedOut?.() ?? null
            : null;
          if (lockError !== null) {
            flush(at);
            send(lockError);
            this.#o.onReport?.(lockError);
            run = end;
            break;
          }
          const edited = editNoticeText(
            msg,
            (s) =>
              s === USER_CANCEL_TEXT && this.#o.timedOut?.() === true
                ? TIMEOUT_TEXT
                : publicText(s, this.#o.prefix),
            this.#o.position,
          );
          if (edited !== msg) {
            flush(at);
            send(edited);
            run = end;
          }
          this.#o.onReport?.(edited);
          break;
        }
        case BE.NotificationResponse: {
          flush(at);
          const inband = this.#o.notify(buf.slice(at, end));
          if (inband !== null && !this.terminatedSelf) send(inband);
          run = end;
          break;
        }
        default:
          break;
      }
      at = end;
    }
    flush(at);
    if (at < buf.length) this.#carry = buf.slice(at);
    return full;
  }
}

function startsWith(buf: Uint8Array, at: number, s: Uint8Array): boolean {
  for (let i = 0; i < s.length; i++) if (buf[at + i] !== s[i]) return false;
  return true;
}
