/**
 * COPY … FROM STDIN for a session (PostgreSQL's commands/copyfrom.c, seen
 * from the connection's side): the client's data on its way to the
 * statement.
 *
 * With the engine in a Worker the COPY is fed (`FedCopy`): its Query (or
 * the extended batch whose Execute runs it, naming.ts) runs at once with a
 * feed as its input (copyfeed.ts) and the client's CopyData goes into the
 * feed as it arrives, while the exec stays in flight across the client's
 * inputs. Inline, PGlite cannot wait for data: `probeCopyIn` learns the
 * CopyInResponse with a Query that fails at once, and the session runs the
 * COPY with all its data at CopyDone (so only a Query's COPY runs inline;
 * the extended form is refused, session.ts).
 *
 * `SessionCopy` is the session's side: the COPY it has in flight, started
 * and fed across its inputs. It changes the session's state only through
 * the hooks the session gives it (`CopySession`), which end in the
 * session's one writer of state.
 *
 * A fed COPY owns its feed writer and its exec's promise; the session owns
 * the engine around it. It must never give the engine a message that is
 * not COPY data (PostgreSQL's FATAL for one mid-COPY is an exit() inside
 * PGlite's exec), and never let its exec's answer reach an input that is
 * not the one in hand.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import type { BackendOutput, TransactionStatus } from "../../core/engine/types.ts";
import { BE, FE } from "../../core/protocol/constants.ts";
import { inputFrames } from "./answers.ts";
import type { CopyFeedWriter } from "./copyfeed.ts";
import { OutputFilter } from "./output.ts";
import { concat, errorResponse, fe, type Frame } from "./wire.ts";

/** What the exec of a fed COPY is told besides its bytes (the session's #execute). */
export interface FedCopyHooks {
  readonly feed: true;
  /** The engine answered CopyInResponse: the input that started the COPY is over. */
  onCopyIn(): void;
  /** A statement is over (done, failed, cancelled, or never begun): its answer's type. */
  onStatementEnd(type: number): void;
}

/** A COPY FROM STDIN whose exec is in flight, reading its data from `feed`. */
export class FedCopy {
  readonly feed: CopyFeedWriter;
  /** Where its answer goes: the out of the client's input in hand, or null (then `held`). */
  out: BackendOutput | null;
  readonly held: Uint8Array[] = [];
  /** The COPY ended (ReadyForQuery): the client's remaining data is dropped. */
  over = false;
  /**
   * The engine waits for the client's data: from a CopyInResponse to the
   * CopyDone or CopyFail that the client sent (the hold timer counts only
   * that time; after it the engine works, between a Query's COPYs too).
   */
  readingData = false;
  /** When the client's data last came (ms since the epoch). */
  lastData = Date.now();
  /** Its exec is over. */
  finished = false;
  error: unknown = null;
  done: Promise<void> = Promise.resolve();
  /** Called once the COPY is over and its exec has ended: the session forgets it. */
  readonly #onEnded: () => void;
  readonly #gone = () => this.finished;
  /** CopyInResponses so far: a Query's COPYs, each in turn. */
  #copyIns = 0;
  /** Told of each CopyInResponse and of the end (#nextCopy). */
  #wake: (() => void) | null = null;

  /**
   * Started by an Execute (the extended protocol): after its CopyDone or
   * CopyFail the engine waits for the batch's Sync, which goes into the feed
   * with it when the client sent it there.
   */
  readonly extended: boolean;

  constructor(
    feed: CopyFeedWriter,
    options: { out: BackendOutput; onEnded: () => void; extended: boolean },
  ) {
    this.feed = feed;
    this.out = options.out;
    this.#onEnded = options.onEnded;
    this.extended = options.extended;
  }

  /**
   * Starts the exec (`run`, given where its answer goes and the hooks it is
   * run with) and resolves once the CopyInResponse is out, or once the
   * statement ended without starting a copy (an error, a COPY from a file
   * after all). The exec goes on while the client's next inputs bring the
   * data (`take`); what it answers meanwhile goes with the input in hand,
   * or waits for the next one. Never rejects: the exec's error is `error`.
   */
  async start(run: (sink: BackendOutput, hooks: FedCopyHooks) => Promise<void>): Promise<void> {
    let begun = () => {};
    const started = new Promise<void>((resolve) => (begun = resolve));
    const sink: BackendOutput = (b) => {
      if (this.out !== null) return this.out(b);
      this.held.push(b.slice());
    };
    this.done = run(sink, {
      feed: true,
      onCopyIn: () => {
        this.#copyIns++;
        this.readingData = true;
        this.lastData = Date.now();
        begun();
        this.#wake?.();
      },
      // Over (done, failed, cancelled, or never begun): what the client still sends of it
      // is read and dropped, as PostgreSQL drops it, without the engine. A
      // Query goes on after a statement's CommandComplete, perhaps to
      // another COPY; an error ends the whole Query.
      onStatementEnd: (type) => {
        if (!this.extended && type === BE.CommandComplete) return;
        this.over = true;
        this.readingData = false;
        this.feed.end();
        this.#wake?.();
      },
    }).catch((e) => {
      this.error = e;
    }).finally(() => {
      this.finished = true;
      this.over = true;
      this.readingData = false;
      this.feed.end();
      begun();
      this.#wake?.();
    });
    await started;
    this.out = null;
  }

  /**
   * The client's input during the COPY: CopyData (and the Flush and Sync
   * PostgreSQL ignores there) into the feed, waiting for room, up to the
   * CopyDone or CopyFail, which ends the feed, or any other message, which
   * goes too and ends it (PostgreSQL's "unexpected message type" error).
   * A Query's COPY is followed by the Query's next statements, another
   * COPY among them maybe: after its CopyDone the feed stays open until
   * the Query is over or the next COPY has begun, whose data the rest of
   * the input is. Once the COPY is over, its remaining data is dropped up
   * to its end. Returns the index of the first frame after the copy
   * (frames.length when all of them belonged to it).
   */
  async take(input: Uint8Array, frames: readonly Frame[], out: BackendOutput): Promise<number> {
    this.out = out;
    this.lastData = Date.now();
    for (const b of this.held.splice(0)) out(b);
    for (let from = 0;;) {
      let end = frames.findIndex((f, i) =>
        i >= from && f.type !== FE.CopyData && f.type !== FE.Flush && f.type !== FE.Sync
      );
      const t = end >= 0 ? frames[end]!.type : null;
      // What the engine is given: up to the CopyDone or CopyFail, or up to
      // (not including) a message that has no place in a COPY.
      const foreign = t !== null && t !== FE.CopyDone && t !== FE.CopyFail;
      // An extended batch's COPY: the Flushes and the Sync that follow its
      // end close the batch (without the Sync the exec ends with the COPY's
      // answer, and the engine stays the session's until the Sync comes as
      // an input of its own).
      if (this.extended && !foreign && end >= 0 && !this.over) {
        while (end + 1 < frames.length && frames[end + 1]!.type === FE.Flush) end++;
        if (end + 1 < frames.length && frames[end + 1]!.type === FE.Sync) end++;
      }
      const start = frames[from]?.start ?? input.length;
      const upTo = end < 0 ? input.length : foreign ? frames[end]!.start : frames[end]!.end;
      const copies = this.#copyIns;
      if (!foreign && end >= 0) this.readingData = false;
      if (!this.over && upTo > start) {
        await this.feed.write(input.subarray(start, upTo), this.#gone);
      }
      if (foreign && !this.over) await this.#break(t!, out);
      if (end < 0) break;
      if (!foreign && !this.extended && (await this.#nextCopy(copies))) {
        // The Query's next COPY has begun: the rest of the input is its data.
        if (end + 1 === frames.length) break;
        from = end + 1;
        continue;
      }
      // After a COPY that ended by itself (an error in its data), another
      // message is the client's next input, as in PostgreSQL.
      if (foreign) end--;
      this.feed.end();
      await this.done;
      this.#onEnded();
      this.out = null;
      if (this.error !== null) throw this.error;
      return end + 1;
    }
    this.out = null;
    return frames.length;
  }

  /**
   * After a Query's CopyDone or CopyFail went into the feed: true once the
   * Query's next COPY has begun (a CopyInResponse after the `seen` ones),
   * false once the Query is over, or failed.
   */
  #nextCopy(seen: number): Promise<boolean> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.#copyIns > seen) resolve(true);
        else if (this.over || this.finished) resolve(false);
        else return;
        this.#wake = null;
      };
      this.#wake = check;
      check();
    });
  }

  /**
   * A message other than CopyData, CopyDone, CopyFail, Flush or Sync in
   * the middle of a COPY. PostgreSQL's CopyGetData rejects its type before
   * it has read the message, so the ERROR leaves the backend mid-message
   * and PostgresMain ends the session: ERROR "unexpected message type",
   * then FATAL "protocol synchronization was lost". The message must never
   * reach PGlite: there that FATAL is an exit() in the middle of an exec,
   * after which the backend answers every later exec with the same FATAL,
   * in a loop that holds the engine for ever. So the engine is given a
   * CopyFail (the COPY is rolled back, its answer is not the client's), and
   * the client PostgreSQL's two errors.
   */
  async #break(type: number, out: BackendOutput): Promise<never> {
    this.out = () => {};
    this.held.length = 0;
    await this.feed.write(fe.copyFail("unexpected message type"), this.#gone);
    this.feed.end();
    await this.done;
    this.#onEnded();
    const hex = type.toString(16).toUpperCase().padStart(2, "0");
    out(errorResponse(
      new PgError(
        ERRCODE.PROTOCOL_VIOLATION,
        `unexpected message type 0x${hex} during COPY from stdin`,
      ),
    ));
    throw new PgError(
      ERRCODE.PROTOCOL_VIOLATION,
      "terminating connection because protocol synchronization was lost",
      { severity: "FATAL" },
    );
  }

  /**
   * The client is gone: the COPY ends as a CopyFail ends it (at the top
   * level, after the COPY, PostgreSQL ignores it), and is rolled back. Not
   * by end of file: PGlite's read would wait for more.
   */
  async abandon(): Promise<void> {
    this.over = true;
    await this.feed.write(fe.copyFail("connection to client lost"), this.#gone);
    this.feed.end();
    await this.done;
  }

  /** The engine failed under the COPY: the rest of the client's data is dropped. */
  stop(): void {
    this.over = true;
    this.feed.end();
  }
}

/**
 * A COPY FROM STDIN on an inline engine, waiting for its data: the Query,
 * and the CopyData so far, run in one exec at CopyDone (or CopyFail).
 */
export class InlineCopy {
  readonly query: Uint8Array;
  readonly #data: Uint8Array[] = [];

  constructor(query: Uint8Array) {
    // `query` may be a view of the caller's buffer, which is only lent for
    // one exec (the backend reuses its MessageContext): keep a copy.
    this.query = query.slice();
  }

  /** Keeps the input's CopyData; the index of its CopyDone or CopyFail, -1 when the data goes on. */
  collect(input: Uint8Array, frames: readonly Frame[]): number {
    const end = frames.findIndex((f) => f.type === FE.CopyDone || f.type === FE.CopyFail);
    for (const f of end < 0 ? frames : frames.slice(0, end)) {
      if (f.type === FE.CopyData) this.#data.push(input.slice(f.start, f.end));
    }
    return end;
  }

  /** The exec's bytes: the Query, its data and `end` (the CopyDone or CopyFail). */
  bytes(end: Uint8Array): Uint8Array {
    return concat([this.query, ...this.#data, end]);
  }
}

/**
 * COPY FROM STDIN on an inline engine, first half. PGlite cannot wait for
 * copy data, so the Query runs once with an immediate CopyFail (inside a
 * savepoint when a transaction is open) to learn the real CopyInResponse,
 * which goes to the client; the session then collects the data and runs
 * the Query for real with it, in one exec, at CopyDone. Null when the
 * Query does not start a copy after all (it then runs normally and reports
 * its own error).
 */
export async function probeCopyIn(
  query: Uint8Array,
  options: {
    /** Runs bytes on the engine as the session. */
    run: (bytes: Uint8Array) => Promise<Uint8Array>;
    inBlock: boolean;
    /** The session's statement prefix, removed from what the engine answers. */
    prefix: string;
  },
): Promise<Uint8Array | null> {
  const probe = options.inBlock
    ? concat([
      fe.query("SAVEPOINT pgts_copy_probe"),
      query,
      fe.copyFail("pgts: copy probe"),
      fe.query("ROLLBACK TO SAVEPOINT pgts_copy_probe; RELEASE SAVEPOINT pgts_copy_probe"),
    ])
    : concat([query, fe.copyFail("pgts: copy probe")]);
  const filter = new OutputFilter({
    prefix: options.prefix,
    out: () => {},
    notify: () => null,
    dropFirst: 0,
    holdCopyIn: true,
  });
  filter.push(await options.run(probe));
  return filter.copyInResponse;
}

/**
 * What a session's COPY asks of its session (session.ts's PgliteSession
 * builds it): each hook that changes the session's state ends in the
 * session's one writer of state.
 */
export interface CopySession {
  readonly prefix: string;
  status(): TransactionStatus;
  /** Runs bytes on the engine as the session. */
  runRaw(bytes: Uint8Array): Promise<Uint8Array>;
  /** A writer of the engine's copy feed (the engine runs in a Worker). */
  openFeed(): CopyFeedWriter;
  /** The input is over while the COPY waits for its data: the session is idle, giving the engine back unless `inBlock`. */
  waitForData(inBlock: boolean): void;
  /** The session takes the engine (bounded wait) if it does not hold it, and is active; false when the input was answered with an error instead. */
  acquire(frames: readonly Frame[], out: BackendOutput): Promise<boolean>;
  /** Runs bytes on the engine the session holds (its #execute). */
  execute(
    bytes: Uint8Array,
    frames: readonly Frame[],
    out: BackendOutput,
    drop: number,
    fed?: FedCopyHooks,
  ): Promise<void>;
}

/** A session's COPY FROM STDIN across its inputs: none, one waiting for its data (inline), or one fed. */
export class SessionCopy {
  /** A COPY FROM STDIN waiting for its data (inline engine). */
  #inline: InlineCopy | null = null;
  /** A COPY FROM STDIN running on the engine, fed the client's data as it comes. */
  #fed: FedCopy | null = null;
  readonly #session: CopySession;

  constructor(session: CopySession) {
    this.#session = session;
  }

  /** Its COPY FROM STDIN in flight on the engine, if any (the hold timer watches its data). */
  get fed(): FedCopy | null {
    return this.#fed;
  }

  /**
   * The client's input while a fed COPY runs: the COPY's data (the exec
   * that runs it is in flight; the session's phase and state stand). What
   * follows the copy is an input of its own: returned, or null when there
   * is none. Without a fed COPY, the whole input.
   */
  async feed(input: Uint8Array, out: BackendOutput): Promise<Uint8Array | null> {
    if (this.#fed === null) return input;
    const frames = inputFrames(input);
    const next = await this.#fed.take(input, frames, out);
    if (next >= frames.length) return null;
    return input.subarray(frames[next]!.start);
  }

  /**
   * The client's input while an inline COPY waits for its data: kept up to
   * CopyDone (or CopyFail), where the COPY runs. What follows the copy, or
   * null when there is none; without such a COPY, the whole input.
   */
  async collect(
    input: Uint8Array,
    frames: Frame[],
    out: BackendOutput,
  ): Promise<{ input: Uint8Array; frames: Frame[] } | null> {
    if (this.#inline === null) return { input, frames };
    const end = this.#inline.collect(input, frames);
    if (end < 0) return null;
    const last = frames[end]!;
    await this.#finishInline(input.slice(last.start, last.end), out);
    if (end + 1 === frames.length) return null;
    input = input.subarray(frames[end + 1]!.start);
    return { input, frames: inputFrames(input) };
  }

  /**
   * COPY FROM STDIN on an inline engine, first half: the CopyInResponse
   * goes to the client and the Query waits for its data, with the engine
   * given back outside a transaction block. False when the Query does not
   * start a copy after all.
   */
  async startInline(query: Uint8Array, out: BackendOutput): Promise<boolean> {
    const s = this.#session;
    const inBlock = s.status() === "T";
    const copyIn = await probeCopyIn(query, {
      run: (bytes) => s.runRaw(bytes),
      inBlock,
      prefix: s.prefix,
    });
    if (copyIn === null) return false;
    out(copyIn);
    this.#inline = new InlineCopy(query);
    s.waitForData(inBlock);
    return true;
  }

  /** COPY FROM STDIN, second half: the Query, its data and CopyDone (or CopyFail) in one exec. */
  async #finishInline(end: Uint8Array, out: BackendOutput): Promise<void> {
    const copy = this.#inline!;
    this.#inline = null;
    const frames = inputFrames(copy.query);
    if (!(await this.#session.acquire(frames, out))) return;
    await this.#session.execute(copy.bytes(end), frames, out, BE.CopyInResponse);
  }

  /**
   * COPY FROM STDIN on an engine in a Worker: this input is over when the
   * CopyInResponse is out, or when the statement ended without starting a
   * copy; the exec goes on while the client's next inputs bring the data.
   */
  async startFed(
    query: Uint8Array,
    frames: readonly Frame[],
    out: BackendOutput,
    extended: boolean,
  ): Promise<void> {
    const copy = new FedCopy(this.#session.openFeed(), {
      out,
      onEnded: () => {
        this.#fed = null;
      },
      extended,
    });
    this.#fed = copy;
    await copy.start((sink, hooks) => this.#session.execute(query, frames, sink, 0, hooks));
    if (copy.finished) this.#fed = null;
    if (copy.error !== null) throw copy.error;
  }

  /** The session is closing: a fed COPY is abandoned (rolled back) and waited for. */
  async abandon(): Promise<void> {
    const fed = this.#fed;
    if (fed !== null) {
      await fed.abandon();
      this.#fed = null;
    }
  }

  /** The engine failed: the COPY is over, the rest of the client's data dropped. */
  stop(): void {
    this.#inline = null;
    this.#fed?.stop();
  }
}
