/**
 * The upstream's answer to a transaction-mode client: the inbound half of
 * pooled-session.ts, as requests.ts is the outbound one. It keeps the queue
 * of the requests sent on the connection the session holds (one per Parse,
 * Bind, Describe, Execute, Close, Sync, Query and FunctionCall, pgts's own
 * among them) and reads each backend message against the head of it: the
 * message that ends a request shifts it; the answers to requests pgts added
 * are dropped; pgts's own answers (to a Parse the connection had, to the
 * client's Close) take their place when they reach the head; after an
 * extended-protocol error the requests the upstream skips, up to the next
 * Sync, fail with it, and an error about a renamed statement names the
 * client's.
 *
 * What is relayed is gathered per read as one range of one buffer (the
 * messages are subarrays of what the upstream sent, never copied) and goes
 * to the client at the end of the read or before an answer of pgts's own.
 * The relay is the held connection's `ServerHandler`; what follows a read
 * (resolving the exec, giving the connection back at 'I') is the session's
 * `settle`: this module changes neither the session's state nor who holds
 * the connection.
 */

import type { PgError } from "../../core/elog.ts";
import type { TransactionStatus } from "../../core/engine/types.ts";
import { BE, FE } from "../../core/protocol/mod.ts";
import { editNoticeText } from "../pglite/wire.ts";
import type { Pool } from "./pool-objects.ts";
import { isFatal, type Request } from "./requests.ts";
import type { PoolServer, ServerHandler } from "./server.ts";

/** Where bytes for the client go. */
export type Out = (backend: Uint8Array) => void;

/** What the relay asks of its session. */
export interface AnswerOwner {
  /** Where the answer goes now (the exec's, else the async sink); null once the client left. */
  sink(): Out | null;
  /** The connection the session holds: its status is the one ReadyForQuery reports. */
  server(): PoolServer | null;
  /** A read ended and what it brought has gone to the client. */
  settle(): void;
  /** The upstream closed the connection or sent what no PostgreSQL sends. */
  lost(reason: PgError): void;
}

export class AnswerRelay implements ServerHandler {
  /** The session's own pool, whose SHOW STATS counts its queries and bytes. */
  readonly #pool: Pool;
  readonly #owner: AnswerOwner;
  #queue: Request[] = [];
  #head = 0;
  /** Sync, Query and FunctionCall requests in the queue: ReadyForQuery messages owed. */
  #owed = 0;
  #copyIn = false;
  #status: TransactionStatus = "I";
  /** Bytes of the current read to relay, as one range of one buffer. */
  #outBuf: Uint8Array | null = null;
  #outStart = 0;
  #outEnd = 0;
  /** The upstream sent a FATAL: its loss needs no message of pgts's own. */
  #fatalSent = false;
  /** Extended-protocol requests that failed (the upstream skipped to the next Sync). */
  extendedErrors = 0;

  constructor(pool: Pool, owner: AnswerOwner) {
    this.#pool = pool;
    this.#owner = owner;
  }

  /** ReadyForQuery messages owed. */
  get owed(): number {
    return this.#owed;
  }

  /** The upstream waits for CopyData (CopyInResponse or CopyBothResponse came). */
  get copyIn(): boolean {
    return this.#copyIn;
  }

  /** The transaction status of the last ReadyForQuery. */
  get status(): TransactionStatus {
    return this.#status;
  }

  /** Nothing is owed and every request has its answer. */
  get drained(): boolean {
    return this.#owed === 0 && this.#head === this.#queue.length;
  }

  get fatalSent(): boolean {
    return this.#fatalSent;
  }

  /** A request sent upstream, or to be answered by pgts: after those queued already. */
  push(r: Request): void {
    this.#queue.push(r);
    if (r.kind === FE.Sync || r.kind === FE.Query || r.kind === FE.FunctionCall) this.#owed++;
  }

  /** The client's CopyDone or CopyFail (or pgts's) went upstream. */
  endCopy(): void {
    this.#copyIn = false;
  }

  message(type: number, buf: Uint8Array, start: number, end: number): void {
    const head = this.#queue[this.#head];
    switch (type) {
      case BE.ParseComplete:
      case BE.BindComplete:
      case BE.CloseComplete:
      case BE.NoData:
      case BE.PortalSuspended:
        return this.#complete(head, true, buf, start, end);
      case BE.RowDescription:
        if (head?.kind === FE.Describe) return this.#complete(head, true, buf, start, end);
        break;
      case BE.CommandComplete:
      case BE.EmptyQueryResponse:
        if (head?.kind === FE.Execute) return this.#complete(head, true, buf, start, end);
        break;
      case BE.ReadyForQuery:
        this.#pool.queries++;
        this.#status = this.#owner.server()?.status ?? "I";
        this.#copyIn = false;
        return this.#complete(head, true, buf, start, end);
      case BE.ErrorResponse: {
        if (isFatal(buf.subarray(start + 5, end))) this.#fatalSent = true;
        if (
          head === undefined || head.kind === FE.Query || head.kind === FE.FunctionCall ||
          head.kind === FE.Sync
        ) break;
        // An extended-protocol request failed: the upstream skips the rest
        // up to the next Sync; so do the requests pgts answers itself.
        this.extendedErrors++;
        let msg = buf.subarray(start, end);
        if (head.rename !== null) {
          const [upstream, client] = head.rename;
          msg = editNoticeText(msg, (s) => s.replaceAll(`"${upstream}"`, `"${client}"`));
        }
        this.#shift();
        head.done?.(false);
        for (
          let r = this.#queue[this.#head];
          r !== undefined && r.kind !== FE.Sync;
          r = this.#queue[this.#head]
        ) {
          this.#shift();
          r.done?.(false);
        }
        this.#emitOwn(msg);
        return;
      }
      case BE.CopyInResponse:
      case BE.CopyBothResponse:
        this.#copyIn = true;
        break;
    }
    this.#emit(buf, start, end);
  }

  chunkEnd(): void {
    this.flush();
    this.#owner.settle();
  }

  lost(reason: PgError): void {
    this.#owner.lost(reason);
  }

  /** Answers the requests pgts answers itself that are now at the head. */
  answerSynthetic(): void {
    for (let r = this.#queue[this.#head]; r?.synthetic != null; r = this.#queue[this.#head]) {
      this.#shift();
      this.#emitOwn(r.synthetic);
      r.done?.(true);
    }
  }

  /** Sends what the read gathered so far. */
  flush(): void {
    const buf = this.#outBuf;
    if (buf === null) return;
    this.#outBuf = null;
    const bytes = this.#outStart === 0 && this.#outEnd === buf.length
      ? buf
      : buf.subarray(this.#outStart, this.#outEnd);
    this.#pool.sent += bytes.length;
    this.#owner.sink()?.(bytes);
  }

  #shift(): void {
    const r = this.#queue[this.#head++];
    if (
      r !== undefined && (r.kind === FE.Sync || r.kind === FE.Query || r.kind === FE.FunctionCall)
    ) {
      this.#owed--;
    }
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    }
  }

  /** `head` got its last answer message (`buf[start..end)`). */
  #complete(
    head: Request | undefined,
    ok: boolean,
    buf: Uint8Array,
    start: number,
    end: number,
  ): void {
    if (head === undefined) {
      this.#emit(buf, start, end);
      return;
    }
    this.#shift();
    if (!head.hidden) this.#emit(buf, start, end);
    head.done?.(ok);
    this.answerSynthetic();
  }

  #emit(buf: Uint8Array, start: number, end: number): void {
    if (this.#outBuf === buf && this.#outEnd === start) {
      this.#outEnd = end;
      return;
    }
    this.flush();
    this.#outBuf = buf;
    this.#outStart = start;
    this.#outEnd = end;
  }

  #emitOwn(bytes: Uint8Array): void {
    this.flush();
    this.#owner.sink()?.(bytes);
  }
}
