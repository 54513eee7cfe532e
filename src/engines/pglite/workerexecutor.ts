/**
 * The `worker` placement of the raw executor (executor.ts), on the
 * engine's thread: PGlite runs in a Worker (executor-worker.ts), and this
 * side sends it execs, reads their answers from the channel or its
 * messages, stops them (statement_timeout's watchdog, cancels, the lock
 * wait watch) by writing PGlite's interrupt flags in the shared heap, and
 * runs the Worker's deferred WAL fdatasyncs (walsyncs.ts).
 *
 * Must never have more than two execs in hand, and never let the one
 * behind run unless the one before it ended idle, decided the same way
 * here as in the Worker (channel.ts's endedIdle).
 */

import { registeredPgliteAssets } from "./assets.ts";
import { type EngineThread, engineThreadClosed, engineThreadOpened } from "./cpuaffinity.ts";
import { CANCEL_SEQ, newCancelCell, pokeFlags, type SharedInterruptTarget } from "./interrupt.ts";
import { msUntilDue, postgresNowUs } from "./statementtimer.ts";
import type { BackendSignal } from "./backends.ts";
import type { TempSpan } from "./tempnamespace.ts";
import type { GucChange } from "./gucwatch.ts";
import { WalProgress } from "./groupcommit.ts";
import { fdatasyncFailure } from "./walflush.ts";
import { WalSyncs } from "./walsyncs.ts";
import type { WorkerReply, WorkerRequest } from "./executor-messages.ts";
import { ANSWERED, ChannelRequester, endedIdle, NOT_RUN, spinWindowAfter } from "./channel.ts";
import { sharedPgliteModule } from "./sharedheap.ts";
import { CopyFeed } from "./copyfeed.ts";
import { CollectorHint, YoungCollections } from "./gchint.ts";
import { startupTraceAt, startupTraceEnabled } from "../../core/starttrace.ts";
import { isLockWait, LOCK_WAIT_POLL_MS } from "./lockwait.ts";
import {
  ExecNotRun,
  type ExecOptions,
  type ExecResult,
  type ExecutorOptions,
  instanceOptions,
  type RawExecutor,
} from "./executor.ts";

/**
 * How often a standing cancel request sets Postgres's flags again when they
 * read 0 (Postgres dropped them before the statement began; interrupt.ts).
 */
const REARM_MS = 10;

/** The Worker's streamed answers arrive here as buffers of their own (gchint.ts). */
const answerHint = new CollectorHint(16);
/** The main thread's share of each statement's garbage, collected young (gchint.ts). */
const young = new YoungCollections();

/** An exec a WorkerExecutor has in hand: running, or waiting behind the one running. */
interface PendingExec {
  readonly seq: number;
  readonly bytes: Uint8Array;
  readonly opts: ReturnType<typeof instanceOptions>;
  readonly onData: (chunk: Uint8Array) => void | Promise<void>;
  readonly resolve: (r: ExecResult) => void;
  readonly reject: (e: Error) => void;
  readonly owner: object | undefined;
  readonly handsOver: boolean;
  readonly timeoutMs: number;
  readonly lockWaitMs: number;
  readonly onLockTimeout: (() => void) | undefined;
  /** How long it may wait behind the one running (ExecOptions.waitMs; 0: no bound). */
  readonly waitMs: number;
  /** Its channel slot, or -1 (posted, or not sent yet). */
  slot: number;
  sent: boolean;
  /** Part of its answer came as `data` messages. */
  streamed: boolean;
  /** A cancel came while it waited behind another: it is asked to stop once it runs. */
  cancelAsked: boolean;
  /** statement_timeout's watchdog, a standing cancel's re-arm timer, the lock wait watch. */
  readonly timers: {
    watchdog?: ReturnType<typeof setTimeout>;
    rearm?: ReturnType<typeof setTimeout>;
    lockWatch?: ReturnType<typeof setTimeout>;
    /** Its wait bound while it waits behind another: it is taken back then. */
    waiting?: ReturnType<typeof setTimeout>;
  };
}

/** Stops the timers of an exec that has ended, or that ends with the Worker. */
function clearTimers(e: PendingExec): void {
  clearTimeout(e.timers.watchdog);
  clearTimeout(e.timers.rearm);
  clearTimeout(e.timers.lockWatch);
  clearTimeout(e.timers.waiting);
}

/**
 * The `worker` placement. At most two execs are in hand: the one running
 * and, where the caller allows it (ExecOptions.conditional), one waiting
 * behind it. The one behind is written into the channel at once when the
 * one running went there too, so the Worker starts it the moment the other
 * ends idle, with no round trip to this thread between (channel.ts);
 * statement_timeout's watchdog and the lock wait watch act on it only once
 * it runs. A cancel, or its wait bound running out, takes it back if the
 * Worker has not taken it yet (its caller gets ExecNotRun at once, and its
 * session answers the cancel or the timeout);
 * while that one still holds the channel's other slot, one more exec may
 * wait here, sent when the running one ends.
 */
export class WorkerExecutor implements RawExecutor {
  onSignals: ((signals: readonly BackendSignal[]) => void) | null = null;
  onExecEnd: ((owner: object | undefined, endedIdle: boolean) => void) | null = null;
  onSettingsChanged: ((change: GucChange) => void) | null = null;
  onRunning: ((owner: object | undefined) => void) | null = null;
  contended: (() => boolean) | null = null;
  readonly pipelines = true;
  readonly boundsLockWaits: boolean;
  readonly tempShared: string | null;
  onWalFailure: ((message: string) => void) | null = null;
  readonly wal = new WalProgress();
  readonly copyFeed: CopyFeed;
  #worker: Worker;
  #cell: Int32Array;
  #channel: ChannelRequester;
  /** PGlite's shared heap and its flags; null if the worker has none. */
  #target: { heap: Int32Array; view: DataView; flags: SharedInterruptTarget } | null;
  #seq = 0;
  #running: PendingExec | null = null;
  #queued: PendingExec | null = null;
  /**
   * A queued exec taken back (#withdraw) whose NOT_RUN the Worker has not
   * given yet: its slot is not to be written again until then.
   */
  #withdrawn: PendingExec | null = null;
  /**
   * An exec that came while #withdrawn held the channel's other slot: not
   * sent; it runs when the running exec ends (#done), in that exec's slot.
   */
  #behind: PendingExec | null = null;
  #closed: (() => void) | null = null;
  #dead: Error | null = null;
  /** The Worker's background WAL fdatasyncs, run on this thread (group commit). */
  #walSyncs: WalSyncs;
  /** The Worker as cpuaffinity.ts counts it. */
  #thread: EngineThread;
  /** The default bound on a lock wait (ms; 0: lock waits are not watched). */
  #lockWaitMs: number;
  /** pgts.engine_spin_time in ms: the longest this thread polls for a lone session's answer. */
  #spinMs: number;
  /** The poll's window now (spinWindowAfter), and whose execs ran last and how many in a row. */
  #replyWindowMs: number;
  #lastOwner: object | undefined = undefined;
  #ownerRun = 0;

  private constructor(
    worker: Worker,
    shared: {
      cell: Int32Array;
      channel: ChannelRequester;
      feed: CopyFeed;
      walSyncs: WalSyncs;
      thread: EngineThread;
    },
    ready: { tempShared: string | null; interrupt: SharedInterruptTarget | null },
    lockWaitMs: number,
    spinUs: number,
  ) {
    this.#worker = worker;
    this.#spinMs = Math.max(0, spinUs) / 1000;
    this.#replyWindowMs = this.#spinMs;
    this.copyFeed = shared.feed;
    this.#cell = shared.cell;
    this.#channel = shared.channel;
    this.#walSyncs = shared.walSyncs;
    this.#thread = shared.thread;
    this.#walSyncs.onDurable = (durable) => this.wal.noteDurable(durable);
    this.#walSyncs.onFailure = (code, name) => this.#walFailed(fdatasyncFailure(name, code));
    this.tempShared = ready.tempShared;
    const target = ready.interrupt;
    this.#target = target === null ? null : {
      heap: new Int32Array(target.heap),
      view: new DataView(target.heap),
      flags: target,
    };
    this.#lockWaitMs = target !== null && target.waitEvent !== 0 ? lockWaitMs : 0;
    this.boundsLockWaits = this.#lockWaitMs > 0;
    worker.onmessage = (ev: MessageEvent<WorkerReply>) => this.#onReply(ev.data);
    worker.onerror = (ev: ErrorEvent) => {
      ev.preventDefault?.();
      this.#fail(new Error(`engine worker failed: ${ev.message}`));
    };
  }

  static start(dataDir: string, options: ExecutorOptions): Promise<WorkerExecutor> {
    const assets = registeredPgliteAssets();
    const url = assets?.executorWorker ?? new URL("./executor-worker.ts", import.meta.url).href;
    const worker = new Worker(url, { type: "module" });
    const cell = newCancelCell();
    const channel = new ChannelRequester();
    const feed = new CopyFeed();
    // Watching from the start: the Worker's recovery at open asks for
    // fdatasyncs too, before anything waits for them here.
    const walSyncs = new WalSyncs();
    walSyncs.start();
    const thread: EngineThread = {
      keepTo: (cpus) => worker.postMessage({ t: "cpus", cpus: [...cpus] } satisfies WorkerRequest),
    };
    const cpus = engineThreadOpened(thread);
    return new Promise((resolve, reject) => {
      worker.onmessage = (ev: MessageEvent<WorkerReply>) => {
        if (ev.data.t === "ready") {
          for (const [step, at] of ev.data.trace ?? []) startupTraceAt(step, at, "engine");
          const ex = new WorkerExecutor(
            worker,
            { cell, channel, feed, walSyncs, thread },
            ev.data,
            options.lockWaitMs ?? 0,
            options.spinUs ?? 0,
          );
          ex.wal.noteRequested(ev.data.requested);
          ex.wal.noteDurable(Math.max(ev.data.durable, walSyncs.requests.durable));
          resolve(ex);
        } else if (ev.data.t === "wal" || ev.data.t === "wal-failed") {
          // Startup's own WAL (recovery): nothing waits for it yet.
        } else {
          void walSyncs.close();
          worker.terminate();
          engineThreadClosed(thread);
          reject(new Error(ev.data.t === "failed" ? ev.data.message : "engine worker failed"));
        }
      };
      worker.onerror = (ev: ErrorEvent) => {
        ev.preventDefault?.();
        void walSyncs.close();
        worker.terminate();
        engineThreadClosed(thread);
        reject(new Error(`engine worker failed to start: ${ev.message}`));
      };
      const open: WorkerRequest = {
        t: "open",
        dataDir,
        cell: cell.buffer,
        channel: channel.buffer,
        feed: feed.buffer,
        walRequests: walSyncs.requests.buffer,
        settings: { ...(options.settings ?? {}) },
        settingFiles: { ...(options.settingFiles ?? {}) },
        image: options.image ?? null,
        database: options.database ?? null,
        spinUs: options.spinUs ?? 0,
        cpus,
        assets,
        ...(startupTraceEnabled() ? { trace: true } : {}),
      };
      worker.postMessage(open);
      // Compiled once in this realm, and shared by the Worker of every
      // database (and begun before this engine was asked for, by runServer).
      sharedPgliteModule().then(
        (module) => worker.postMessage({ t: "module", module } satisfies WorkerRequest),
        () => worker.postMessage({ t: "module", module: null } satisfies WorkerRequest),
      );
    });
  }

  exec(
    bytes: Uint8Array,
    onData: (chunk: Uint8Array) => void,
    options: ExecOptions = {},
  ): Promise<ExecResult> {
    if (this.#dead !== null) return Promise.reject(this.#dead);
    const running = this.#running;
    if (
      running !== null &&
      (options.conditional !== true || this.#queued !== null || this.#behind !== null)
    ) {
      return Promise.reject(new TypeError("RawExecutor.exec called while one is in flight"));
    }
    const seq = this.#seq = (this.#seq % 0x7ffffff0) + 1;
    young.note();
    return new Promise((resolve, reject) => {
      const e: PendingExec = {
        seq,
        bytes,
        opts: instanceOptions(options),
        onData,
        resolve,
        reject,
        owner: options.owner,
        handsOver: options.handsOver === true,
        timeoutMs: options.timeoutMs ?? 0,
        lockWaitMs: options.lockWaitMs ?? this.#lockWaitMs,
        onLockTimeout: options.onLockTimeout,
        waitMs: options.waitMs ?? 0,
        slot: -1,
        sent: false,
        streamed: false,
        cancelAsked: false,
        timers: {},
      };
      if (running === null) {
        this.#run(e);
        return;
      }
      // Waiting longer than its bound (its session's statement_timeout,
      // lock_timeout or pgts.engine_wait_timeout, less what it waited
      // before), it is taken back, as those end a wait for a lock.
      if (e.waitMs > 0) {
        e.timers.waiting = setTimeout(() => this.#withdraw(e, "wait timeout"), e.waitMs);
      }
      if (this.#withdrawn !== null) {
        // The channel's other slot is the withdrawn exec's until its NOT_RUN.
        this.#behind = e;
        return;
      }
      this.#queued = e;
      // Behind a posted exec it waits here: a message and the channel
      // could reach the Worker in either order.
      if (running.slot >= 0) {
        e.slot = this.#channel.trySend(seq, bytes, e.opts, true);
        e.sent = e.slot >= 0;
      }
    });
  }

  /** `e` runs now: sent unless it was, its timers armed, a cancel that came for it asked. */
  #run(e: PendingExec): void {
    this.#running = e;
    clearTimeout(e.timers.waiting);
    // statement_timeout: the worker checks it only at host calls.
    if (e.timeoutMs > 0 && this.#target !== null) this.#watch(e, postgresNowUs(), e.timeoutMs);
    if (this.#lockWaitMs > 0 && e.lockWaitMs > 0) {
      this.#watchLockWait(e.seq, e.lockWaitMs, e.onLockTimeout);
    }
    if (!e.sent) {
      e.sent = true;
      e.slot = this.#channel.trySend(e.seq, e.bytes, e.opts, false);
      if (e.slot < 0) {
        const req: WorkerRequest = { t: "exec", seq: e.seq, bytes: e.bytes, options: e.opts };
        this.#worker.postMessage(req);
      }
    }
    if (e.slot >= 0) {
      // A lone session (its second exec in a row, nobody else's between)
      // waits for its answer polling, as the Worker polls for requests
      // (channel.ts): its client waits on this answer alone, and the
      // thread's sleep and wake-up cost more than a short statement. With
      // other sessions about, this thread's time is theirs (their
      // statements queue behind this one meanwhile).
      if (e.owner !== undefined && e.owner === this.#lastOwner) this.#ownerRun++;
      else this.#ownerRun = 0;
      this.#lastOwner = e.owner;
      const lone = this.#ownerRun >= 1 && this.#spinMs > 0;
      const spinMs = lone ? this.#replyWindowMs : 0;
      const from = lone ? performance.now() : 0;
      // Else, while others wait to run right after it (an exec queued
      // behind this one, or sessions in line for one that hands the engine
      // over), this thread polls for the answer between its other work, for
      // up to engine_spin_time: their statements go the moment this one
      // ends. (Polling for any wait made TPC-B slower: its statements
      // inside their blocks hand nothing over.)
      const pollMs = lone ? 0 : this.#spinMs;
      void this.#channel.reply(
        e.slot,
        e.seq,
        () => this.#running === e,
        spinMs,
        pollMs,
        () => this.#queued !== null || (e.handsOver && this.contended?.() === true),
      ).then((r) => {
        if (from > 0) {
          this.#replyWindowMs = spinWindowAfter(
            this.#replyWindowMs,
            this.#spinMs,
            performance.now() - from,
          );
        }
        // BY_MESSAGE: its `done` message ends it.
        if (r !== null && r.kind === ANSWERED) this.#done(e, r);
      });
    }
    if (e.cancelAsked) this.#request(e.seq);
    if (e.handsOver) this.onRunning?.(e.owner);
  }

  interrupt(owner?: object): void {
    const r = this.#running;
    if (r !== null && (owner === undefined || r.owner === owner)) {
      this.#request(r.seq);
      return;
    }
    if (owner === undefined) return;
    for (const w of [this.#behind, this.#queued]) {
      if (w !== null && w.owner === owner && !this.#withdraw(w, "cancel")) w.cancelAsked = true;
    }
  }

  /**
   * Takes back `w`, which waits behind the running exec (queued, or behind
   * a withdrawn one), if the Worker has not taken it yet: its caller gets
   * ExecNotRun with `by` now, and its session answers the cancel or the
   * timeout (session.ts), as PostgreSQL's backend would at the statement's
   * first CHECK_FOR_INTERRUPTS, where the exec ahead may run for long.
   * False when it is not waiting here, or the Worker has it already (then
   * a cancel acts once it runs).
   */
  #withdraw(w: PendingExec, by: "cancel" | "wait timeout"): boolean {
    if (w === this.#behind) {
      // Not sent yet: it never runs.
      this.#behind = null;
    } else if (w !== this.#queued) {
      return false;
    } else if (!w.sent) {
      this.#queued = null;
    } else if (w.slot >= 0 && this.#channel.withdraw(w.slot)) {
      // Its slot stays its own until the Worker's NOT_RUN for it is read
      // (#settleWithdrawn, at an exec's end); what comes meanwhile waits in
      // #behind, unsent.
      this.#queued = null;
      this.#withdrawn = w;
    } else {
      return false;
    }
    clearTimers(w);
    w.reject(new ExecNotRun(by));
    return true;
  }

  /**
   * At an exec's end (its answer read): reads the withdrawn exec's answer if
   * the Worker has given it, which must be NOT_RUN, and frees its slot. The
   * Worker answers it right after the exec that ran when it was withdrawn,
   * so by the end of the exec after that it is there. Only here: a slot is
   * written again only once the Worker took its request and its answer was
   * read, and the answer of the exec before may still be unread elsewhere.
   */
  #settleWithdrawn(): void {
    const w = this.#withdrawn;
    if (w === null) return;
    const r = this.#channel.replied(w.slot, w.seq);
    if (r === null) return;
    this.#withdrawn = null;
    if (r.kind !== NOT_RUN) this.#fail(new Error("engine worker ran an exec that was withdrawn"));
  }

  /**
   * Reads the backend's wait event every LOCK_WAIT_POLL_MS while exec
   * `seq` runs, and cancels the exec once it has waited for a lock for
   * `boundMs` (lockwait.ts): nothing else could ever end that wait.
   */
  #watchLockWait(seq: number, boundMs: number, onLockTimeout?: () => void): void {
    const target = this.#target!;
    let since = 0;
    const look = () => {
      const p = this.#running;
      if (p?.seq !== seq) return;
      const now = performance.now();
      if (!isLockWait(Atomics.load(target.heap, target.flags.waitEvent >> 2))) since = 0;
      else if (since === 0) since = now;
      else if (now - since >= boundMs) {
        onLockTimeout?.();
        this.#request(seq);
        return;
      }
      p.timers.lockWatch = setTimeout(look, LOCK_WAIT_POLL_MS);
    };
    this.#running!.timers.lockWatch = setTimeout(look, LOCK_WAIT_POLL_MS);
  }

  /**
   * statement_timeout's watchdog for `e`, which began at `startUs`: in
   * `afterMs`, stops it if its statement is due by then, by Postgres's own
   * timer where it times the statement (statementtimer.ts), else looks
   * again when it will be.
   */
  #watch(e: PendingExec, startUs: number, afterMs: number): void {
    e.timers.watchdog = setTimeout(() => {
      const target = this.#target!;
      const wait = msUntilDue(target.view, target.flags.statementTimer, startUs, e.timeoutMs);
      if (wait === 0) this.#request(e.seq);
      else this.#watch(e, startUs, wait);
    }, afterMs);
  }

  /** Asks exec `seq` to stop: the cell for the worker's host calls, the flags for the rest. */
  #request(seq: number): void {
    if (this.#running?.seq !== seq) return;
    Atomics.store(this.#cell, CANCEL_SEQ, seq);
    Atomics.notify(this.#cell, CANCEL_SEQ); // a timed wait blocked on it (cancelclock.ts)
    const target = this.#target;
    if (target === null) return;
    const poke = () => {
      if (this.#running?.seq !== seq) return;
      clearTimeout(this.#running.timers.rearm);
      if (pokeFlags(this.#cell, target.heap, target.flags, seq)) {
        this.#running.timers.rearm = setTimeout(poke, REARM_MS);
      }
    };
    poke();
  }

  close(): Promise<void> {
    // A COPY still reading its feed would keep the Worker from the close.
    this.copyFeed.end();
    if (this.#dead !== null) {
      this.#worker.terminate();
      this.#channel.close();
      this.#closeWalFds();
      engineThreadClosed(this.#thread);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(), 10_000);
      const finish = () => {
        clearTimeout(timer);
        this.#worker.terminate();
        this.#channel.close();
        this.#closeWalFds();
        engineThreadClosed(this.#thread);
        resolve();
      };
      this.#closed = finish;
      const req: WorkerRequest = { t: "close" };
      this.#worker.postMessage(req);
    });
  }

  #onReply(m: WorkerReply): void {
    switch (m.t) {
      case "data": {
        this.wal.noteRequested(m.wal);
        // Taken once the session's side has room (channel.ts's flow control).
        const n = m.bytes.length;
        answerHint.note(n);
        const r = this.#running;
        let full: void | Promise<void> = undefined;
        if (r?.seq === m.seq) {
          r.streamed = true;
          full = r.onData(m.bytes);
        }
        if (!(full instanceof Promise)) this.#channel.ack(n);
        else void full.then(() => this.#channel.ack(n), () => this.#channel.ack(n));
        return;
      }
      case "done":
        if (this.#running?.seq === m.seq) this.#done(this.#running, m);
        return;
      case "wal":
        this.wal.noteDurable(m.durable);
        return;
      case "wal-failed":
        this.#walFailed(m.message);
        return;
      case "closed":
        this.#closed?.();
        return;
      case "ready":
      case "failed":
        return;
      default: {
        const never: never = m;
        throw new TypeError(`Unknown engine worker reply ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * The end of the running exec `e`, whichever way its answer came. The
   * exec behind it runs next if `e` ended idle (the Worker, deciding the
   * same on the same answer, has started it already), or is given back
   * with ExecNotRun.
   */
  #done(
    e: PendingExec,
    m: {
      bytes: Uint8Array | null;
      error: string | null;
      signals: readonly BackendSignal[];
      temp: TempSpan | null;
      gucs: GucChange | null;
      wal: number;
    },
  ): void {
    this.wal.noteRequested(m.wal);
    if (this.#running !== e) return;
    this.#settleWithdrawn();
    if (this.#dead !== null) return;
    this.#running = null;
    clearTimers(e);
    const parts = m.bytes !== null && m.bytes.length > 0 ? [m.bytes] : [];
    const idle = !e.streamed && endedIdle(parts, m);
    const q = this.#queued;
    this.#queued = null;
    this.onExecEnd?.(e.owner, idle);
    if (m.gucs !== null) this.onSettingsChanged?.(m.gucs);
    if (parts.length > 0) e.onData(parts[0]!);
    if (m.signals.length > 0) this.onSignals?.(m.signals);
    if (m.error !== null) e.reject(new Error(m.error));
    else e.resolve({ temp: m.temp, endedIdle: idle, gucs: m.gucs });
    // One queued in the channel, or one that waited here while a withdrawn
    // exec held the channel's other slot: this exec's slot is free for it.
    const next = q ?? this.#behind;
    if (next === this.#behind) this.#behind = null;
    if (next === null) return;
    if (idle) {
      this.#run(next);
      return;
    }
    if (next.sent) this.#checkNotRun(next);
    next.reject(new ExecNotRun());
  }

  /**
   * The Worker's answer to `q`, which this thread decided did not run,
   * must say NOT_RUN: both sides decide with one function on one answer,
   * and if they ever disagreed the engine's state would be unknown.
   */
  #checkNotRun(q: PendingExec): void {
    void this.#channel.reply(q.slot, q.seq, () => this.#dead === null).then((r) => {
      if (r !== null && r.kind !== NOT_RUN) {
        this.#fail(new Error("engine worker ran an exec that was not to run"));
      }
    });
  }

  #closeWalFds(): void {
    void this.#walSyncs.close();
  }

  #walFailed(message: string): void {
    if (this.wal.failed !== null) return;
    this.wal.fail(message);
    this.onWalFailure?.(message);
  }

  #fail(e: Error): void {
    this.#dead = e;
    engineThreadClosed(this.#thread);
    for (const p of [this.#running, this.#queued, this.#behind]) {
      if (p === null) continue;
      clearTimers(p);
      p.reject(e);
    }
    this.#running = null;
    this.#queued = null;
    this.#behind = null;
    this.#withdrawn = null;
    this.#closed?.();
  }
}
