/**
 * A session's output on its way to its client. Everything goes through one
 * `AnswerGate` (groupcommit.ts), so an answer leaves only once the WAL it
 * depends on is on disk and nothing is ever reordered; and what the
 * client's socket does not take is watched:
 *
 * - an answer whose write waits for the socket stops the session's timers
 *   until every such write went (a statement's result cannot be an idle
 *   client: SessionTimeouts.outputBlocked/outputFlowing);
 * - notifications are kept in memory until the socket takes them. A
 *   listener whose client stops reading while others notify would grow the
 *   server without bound (PostgreSQL keeps its queue on disk, and at 8 GB
 *   refuses NOTIFY), so past ASYNC_BACKLOG_MAX bytes not taken the session
 *   is ended (`overflow`).
 *
 * Holds no engine state.
 */

import type { BackendOutput } from "../../core/engine/types.ts";
import type { AnswerGate } from "./groupcommit.ts";

/** Bytes of notifications a client may leave untaken before its session is ended. */
export const ASYNC_BACKLOG_MAX = 32 * 1024 * 1024;

export interface SessionOutputHooks {
  /** A write to the client waits for its socket (the first of several). */
  blocked(): void;
  /** Every write that waited went. */
  flowing(): void;
  /** More than ASYNC_BACKLOG_MAX bytes of notifications wait untaken. */
  overflow(bytes: number): void;
}

export class SessionOutput {
  readonly gate: AnswerGate;
  readonly #hooks: SessionOutputHooks;
  /** Writes to the client that wait for its socket to take them. */
  #blockedWrites = 0;
  /** Bytes of notifications given to the client's socket since it last drained. */
  #asyncBacklog = 0;

  constructor(gate: AnswerGate, hooks: SessionOutputHooks) {
    this.gate = gate;
    this.#hooks = hooks;
  }

  /** `out` behind the gate, its blocked writes told to the timers: an input's answer. */
  answers(out: BackendOutput): BackendOutput {
    const watched = this.#watched(out);
    return (b) => this.gate.send(b, watched);
  }

  /** A notification (or notice) for the client, through the gate, its backlog counted. */
  notification(bytes: Uint8Array, deliver: (b: Uint8Array) => void | Promise<void>): void {
    this.gate.send(bytes, (b) => {
      const r = deliver(b);
      if (!(r instanceof Promise)) return;
      if (this.#asyncBacklog === 0) void r.then(() => (this.#asyncBacklog = 0));
      this.#asyncBacklog += b.length;
      if (this.#asyncBacklog > ASYNC_BACKLOG_MAX) this.#hooks.overflow(this.#asyncBacklog);
    });
  }

  #watched(out: BackendOutput): BackendOutput {
    return (b) => {
      const r = out(b);
      if (!(r instanceof Promise)) return r;
      if (this.#blockedWrites++ === 0) this.#hooks.blocked();
      const flowing = () => {
        if (--this.#blockedWrites === 0) this.#hooks.flowing();
      };
      return r.then(flowing, (e) => {
        flowing();
        throw e;
      });
    };
  }
}
