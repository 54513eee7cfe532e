/**
 * The raw executor: the only thing that talks to the PGlite instance. It
 * runs one byte batch at a time and knows nothing of sessions; the
 * scheduler (scheduler.ts) decides whose bytes run, and an exec's owner is
 * only a name to cancel it by and to report its end under.
 *
 * Two placements:
 * - `worker` (default): PGlite runs in a Worker thread. The engine's own
 *   thread stays free while a statement runs, so wait timeouts, idle
 *   timeouts and cancels happen on time. PGlite's heap is shared memory
 *   (sharedheap.ts), so a cancel or statement_timeout (a watchdog timer
 *   here) sets Postgres's interrupt flags directly and stops even a
 *   statement that makes no host call (interrupt.ts).
 *   An exec and its answer cross through a SharedArrayBuffer channel woken
 *   by Atomics (channel.ts), not a postMessage each way, when they fit.
 *   It pipelines: the next session's exec may wait in the Worker behind
 *   the one running, and runs the moment that one ends idle, while this
 *   thread still reads the answer before it (scheduler.ts's hand-over).
 * - `inline`: PGlite runs on the calling thread. Cheaper per call, but
 *   nothing else on the thread runs during a statement: a cancel or a
 *   timeout only takes effect at the statement's next host call, or when
 *   it is over.
 *
 * An executor never throws for SQL errors (they are protocol bytes); it
 * rejects only when PGlite itself fails, and stays usable afterwards when
 * PGlite does.
 *
 * Group commit (walflush.ts, groupcommit.ts): before each chunk of an
 * answer reaches `onData`, `wal.requested` is the WAL ticket the chunk
 * depends on; `wal.durable` follows the fdatasyncs done where PGlite runs
 * (for a Worker, on this thread: walsyncs.ts). The Worker's messages are
 * in executor-messages.ts.
 */

import { registeredPgliteAssets } from "./assets.ts";
import type { ImageSource } from "./image.ts";
import { openInstance, type PGliteInstance } from "./instance.ts";
import { CANCEL_SEQ, newCancelCell, pokeFlags, type SharedInterruptTarget } from "./interrupt.ts";
import type { ActivityRow, BackendEntry, BackendSignal } from "./backends.ts";
import type { TempPair, TempSpan } from "./tempnamespace.ts";
import { WalProgress } from "./groupcommit.ts";
import { fdatasyncFailure } from "./walflush.ts";
import { WalSyncs } from "./walsyncs.ts";
import type { WorkerReply, WorkerRequest } from "./executor-messages.ts";
import { ANSWERED, ChannelRequester, endedIdle, NOT_RUN } from "./channel.ts";
import { sharedPgliteModule } from "./sharedheap.ts";
import { CopyFeed } from "./copyfeed.ts";
import { CollectorHint } from "./gchint.ts";
import { startupTraceAt, startupTraceEnabled } from "../../core/starttrace.ts";
import { isLockWait, LOCK_WAIT_POLL_MS } from "./lockwait.ts";

export interface RawExecutor {
  /**
   * Runs framed frontend messages; backend bytes go to `onData` (copies,
   * possibly split mid-message). A promise from `onData` holds the rest of
   * the answer back until it resolves (in a Worker; inline, PGlite cannot
   * wait).
   */
  exec(
    bytes: Uint8Array,
    onData: (chunk: Uint8Array) => void | Promise<void>,
    options?: ExecOptions,
  ): Promise<ExecResult>;
  /**
   * Why temporary objects are shared by every session (tempnamespace.ts),
   * or null when each session has its own.
   */
  readonly tempShared: string | null;
  /**
   * Cancels the exec of `owner` (ExecOptions.owner), or with no owner the
   * one running; a no-op when there is none. An exec still waiting behind
   * another is cancelled once it runs.
   */
  interrupt(owner?: object): void;
  /**
   * Whether an exec may wait in the executor behind the one running
   * (ExecOptions.conditional): a Worker, which then runs it the moment the
   * one before ends idle, without a round trip to this thread between.
   */
  readonly pipelines: boolean;
  /**
   * Called when an exec ends, before its answer is handed on: whether it
   * ended idle (channel.ts's endedIdle), so that the exec behind it runs.
   */
  onExecEnd: ((owner: object | undefined, endedIdle: boolean) => void) | null;
  /**
   * Called when an exec with `handsOver` runs and nothing waits behind it:
   * the next may be given the engine now (scheduler.ts's handOver).
   */
  onRunning: ((owner: object | undefined) => void) | null;
  /** Whether a lock wait is ended after its bound (lockwait.ts): a Worker, on a known build. */
  readonly boundsLockWaits: boolean;
  close(): Promise<void>;
  /**
   * Gets the signals an exec sent to other sessions (pg_cancel_backend,
   * pg_terminate_backend; see backends.ts), once that exec is over.
   */
  onSignals: ((signals: readonly BackendSignal[]) => void) | null;
  /** The WAL tickets answers depend on, and those on disk (group commit). */
  readonly wal: WalProgress;
  /** Called once when a deferred fdatasync of the WAL failed: the backend is gone (a PANIC). */
  onWalFailure: ((message: string) => void) | null;
  /**
   * Where an exec run with `feed` reads the client's COPY data as it comes
   * (copyfeed.ts); null inline, where the engine cannot wait for it.
   */
  readonly copyFeed: CopyFeed | null;
}

export interface ExecResult {
  /**
   * The backend's temporary namespaces at the exec's start and end, when
   * PostgreSQL changed them during it; null when it did not (or when they
   * are not per session).
   */
  readonly temp: TempSpan | null;
  /** The answer ended idle (channel.ts's endedIdle); always false inline. */
  readonly endedIdle: boolean;
}

/**
 * The rejection of a conditional exec (ExecOptions.conditional) that did
 * not run, because the exec before it did not end idle: nothing of it
 * reached the engine, and its caller tries again once it owns the engine.
 */
export class ExecNotRun extends Error {
  constructor() {
    super("the exec did not run: the one before it did not end idle");
    this.name = "ExecNotRun";
  }
}

export interface ExecOptions {
  /**
   * The OID of the login role of the session whose input this is
   * (guard.ts); without it the bytes are pgts's own work and may switch the
   * backend to any role.
   */
  readonly runAs?: number;
  /** statement_timeout in ms: the exec is cancelled once it runs longer (see instance.ts). */
  readonly timeoutMs?: number;
  /** The pid of the session whose input this is: what pg_backend_pid() returns. */
  readonly pid?: number;
  /** The engine's sessions, when they changed since they were last passed. */
  readonly backends?: readonly BackendEntry[];
  /** pg_stat_activity's rows, when the input reads them. */
  readonly activity?: readonly ActivityRow[];
  /** Put the shipped extension bundles into the engine first (extensions.ts). */
  readonly loadExtensions?: boolean;
  /** The session's temporary namespaces, which the backend is given first (tempnamespace.ts). */
  readonly temp?: TempPair;
  /** The input goes on with what `copyFeed` brings, until it ends (COPY FROM STDIN). */
  readonly feed?: boolean;
  /**
   * How long a lock wait may hold the engine before the exec is cancelled
   * (lockwait.ts); the executor's `lockWaitMs` when absent.
   */
  readonly lockWaitMs?: number;
  /** Called, on this thread, just before an exec is cancelled for its lock wait. */
  readonly onLockTimeout?: () => void;
  /** Whose exec this is: what `interrupt(owner)` names, and what onExecEnd and onRunning are told. */
  readonly owner?: object;
  /**
   * It may wait behind the exec running (where the executor pipelines),
   * and then runs only if that one ends idle; else it rejects with
   * ExecNotRun.
   */
  readonly conditional?: boolean;
  /** Call onRunning once it runs with nothing behind it. */
  readonly handsOver?: boolean;
}

function instanceOptions(options: ExecOptions) {
  return {
    runAs: options.runAs ?? null,
    timeoutMs: options.timeoutMs ?? 0,
    pid: options.pid ?? null,
    ...(options.backends !== undefined ? { backends: options.backends } : {}),
    ...(options.activity !== undefined ? { activity: options.activity } : {}),
    ...(options.loadExtensions === true ? { loadExtensions: true } : {}),
    ...(options.temp !== undefined ? { temp: options.temp } : {}),
    ...(options.feed === true ? { feed: true } : {}),
  };
}

export interface ExecutorOptions {
  readonly placement?: "worker" | "inline";
  readonly settings?: Readonly<Record<string, string>>;
  /** A cluster image to load into the (empty) data directory first; see instance.ts. */
  readonly image?: ImageSource;
  /** The database of the cluster the backend serves (PGlite's default: "postgres"). */
  readonly database?: string;
  /**
   * Bound lock waits (lockwait.ts) to this many ms by default; 0 or absent:
   * not watched (no prepared transactions, no lock waits).
   */
  readonly lockWaitMs?: number;
}

export function startExecutor(
  dataDir: string,
  options: ExecutorOptions = {},
): Promise<RawExecutor> {
  return options.placement === "inline"
    ? InlineExecutor.start(dataDir, options)
    : WorkerExecutor.start(dataDir, options);
}

class InlineExecutor implements RawExecutor {
  onSignals: ((signals: readonly BackendSignal[]) => void) | null = null;
  onExecEnd: ((owner: object | undefined, endedIdle: boolean) => void) | null = null;
  onRunning: ((owner: object | undefined) => void) | null = null;
  readonly pipelines = false;
  readonly boundsLockWaits = false;
  readonly copyFeed = null;
  readonly tempShared: string | null;
  onWalFailure: ((message: string) => void) | null = null;
  readonly wal: WalProgress;
  #instance: PGliteInstance;
  #cell: Int32Array;
  #seq = 0;
  #running = 0;

  private constructor(instance: PGliteInstance, cell: Int32Array, wal: WalProgress) {
    this.#instance = instance;
    this.#cell = cell;
    this.tempShared = instance.tempShared;
    this.wal = wal;
  }

  static async start(dataDir: string, options: ExecutorOptions): Promise<InlineExecutor> {
    const cell = newCancelCell();
    const wal = new WalProgress();
    let self: InlineExecutor | null = null;
    const instance = await openInstance(dataDir, {
      cancelCell: cell,
      ...(options.settings !== undefined ? { settings: options.settings } : {}),
      ...(options.image !== undefined ? { image: options.image } : {}),
      ...(options.database !== undefined ? { database: options.database } : {}),
      onWalDurable: (d) => wal.noteDurable(d),
      onWalFailure: (m) => {
        wal.fail(m);
        self?.onWalFailure?.(m);
      },
    });
    wal.noteRequested(instance.walTicket());
    return self = new InlineExecutor(instance, cell, wal);
  }

  async exec(
    bytes: Uint8Array,
    onData: (chunk: Uint8Array) => void | Promise<void>,
    options: ExecOptions = {},
  ): Promise<ExecResult> {
    const seq = this.#seq = (this.#seq % 0x7ffffff0) + 1;
    this.#running = seq;
    let result: { signals: readonly BackendSignal[]; temp: TempSpan | null };
    const instance = this.#instance;
    const wal = this.wal;
    try {
      result = await instance.exec(seq, bytes, (chunk) => {
        wal.noteRequested(instance.walTicket());
        onData(chunk);
      }, instanceOptions(options));
      wal.noteRequested(instance.walTicket());
    } finally {
      this.#running = 0;
    }
    if (result.signals.length > 0) this.onSignals?.(result.signals);
    return { temp: result.temp, endedIdle: false };
  }

  interrupt(): void {
    if (this.#running !== 0) Atomics.store(this.#cell, CANCEL_SEQ, this.#running);
  }

  close(): Promise<void> {
    return this.#instance.close();
  }
}

/**
 * How often a standing cancel request sets Postgres's flags again when they
 * read 0 (Postgres dropped them before the statement began; interrupt.ts).
 */
const REARM_MS = 10;

/** The Worker's streamed answers arrive here as buffers of their own (gchint.ts). */
const answerHint = new CollectorHint(16);

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
  };
}

/**
 * The `worker` placement. At most two execs are in hand: the one running
 * and, where the caller allows it (ExecOptions.conditional), one waiting
 * behind it. The one behind is written into the channel at once when the
 * one running went there too, so the Worker starts it the moment the other
 * ends idle, with no round trip to this thread between (channel.ts); a
 * cancel, statement_timeout's watchdog and the lock wait watch act on it
 * only once it runs.
 */
class WorkerExecutor implements RawExecutor {
  onSignals: ((signals: readonly BackendSignal[]) => void) | null = null;
  onExecEnd: ((owner: object | undefined, endedIdle: boolean) => void) | null = null;
  onRunning: ((owner: object | undefined) => void) | null = null;
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
  #target: { heap: Int32Array; flags: SharedInterruptTarget } | null;
  #seq = 0;
  #running: PendingExec | null = null;
  #queued: PendingExec | null = null;
  #closed: (() => void) | null = null;
  #dead: Error | null = null;
  /** The Worker's background WAL fdatasyncs, run on this thread (group commit). */
  #walSyncs: WalSyncs;
  /** The default bound on a lock wait (ms; 0: lock waits are not watched). */
  #lockWaitMs: number;

  private constructor(
    worker: Worker,
    shared: { cell: Int32Array; channel: ChannelRequester; feed: CopyFeed; walSyncs: WalSyncs },
    ready: { tempShared: string | null; interrupt: SharedInterruptTarget | null },
    lockWaitMs: number,
  ) {
    this.#worker = worker;
    this.copyFeed = shared.feed;
    this.#cell = shared.cell;
    this.#channel = shared.channel;
    this.#walSyncs = shared.walSyncs;
    this.#walSyncs.onDurable = (durable) => this.wal.noteDurable(durable);
    this.#walSyncs.onFailure = (code, name) => this.#walFailed(fdatasyncFailure(name, code));
    this.tempShared = ready.tempShared;
    const target = ready.interrupt;
    this.#target = target === null ? null : { heap: new Int32Array(target.heap), flags: target };
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
    return new Promise((resolve, reject) => {
      worker.onmessage = (ev: MessageEvent<WorkerReply>) => {
        if (ev.data.t === "ready") {
          for (const [step, at] of ev.data.trace ?? []) startupTraceAt(step, at, "engine");
          const ex = new WorkerExecutor(
            worker,
            { cell, channel, feed, walSyncs },
            ev.data,
            options.lockWaitMs ?? 0,
          );
          ex.wal.noteRequested(ev.data.requested);
          ex.wal.noteDurable(Math.max(ev.data.durable, walSyncs.requests.durable));
          resolve(ex);
        } else if (ev.data.t === "wal" || ev.data.t === "wal-failed") {
          // Startup's own WAL (recovery): nothing waits for it yet.
        } else {
          void walSyncs.close();
          worker.terminate();
          reject(new Error(ev.data.t === "failed" ? ev.data.message : "engine worker failed"));
        }
      };
      worker.onerror = (ev: ErrorEvent) => {
        ev.preventDefault?.();
        void walSyncs.close();
        worker.terminate();
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
        image: options.image ?? null,
        database: options.database ?? null,
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
    if (running !== null && (this.#queued !== null || options.conditional !== true)) {
      return Promise.reject(new TypeError("RawExecutor.exec called while one is in flight"));
    }
    const seq = this.#seq = (this.#seq % 0x7ffffff0) + 1;
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
    // statement_timeout: the worker checks it only at host calls.
    if (e.timeoutMs > 0 && this.#target !== null) {
      e.timers.watchdog = setTimeout(() => this.#request(e.seq), e.timeoutMs);
    }
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
      void this.#channel.reply(e.slot, e.seq, () => this.#running === e).then((r) => {
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
    const q = this.#queued;
    if (q !== null && owner !== undefined && q.owner === owner) q.cancelAsked = true;
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

  /** Asks exec `seq` to stop: the cell for the worker's host calls, the flags for the rest. */
  #request(seq: number): void {
    if (this.#running?.seq !== seq) return;
    Atomics.store(this.#cell, CANCEL_SEQ, seq);
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
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(), 10_000);
      const finish = () => {
        clearTimeout(timer);
        this.#worker.terminate();
        this.#channel.close();
        this.#closeWalFds();
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
      wal: number;
    },
  ): void {
    this.wal.noteRequested(m.wal);
    if (this.#running !== e) return;
    this.#running = null;
    clearTimeout(e.timers.watchdog);
    clearTimeout(e.timers.rearm);
    clearTimeout(e.timers.lockWatch);
    const parts = m.bytes !== null && m.bytes.length > 0 ? [m.bytes] : [];
    const idle = !e.streamed && endedIdle(parts, m);
    const q = this.#queued;
    this.#queued = null;
    this.onExecEnd?.(e.owner, idle);
    if (parts.length > 0) e.onData(parts[0]!);
    if (m.signals.length > 0) this.onSignals?.(m.signals);
    if (m.error !== null) e.reject(new Error(m.error));
    else e.resolve({ temp: m.temp, endedIdle: idle });
    if (q === null) return;
    if (idle) {
      this.#run(q);
      return;
    }
    if (q.sent) this.#checkNotRun(q);
    q.reject(new ExecNotRun());
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
    for (const p of [this.#running, this.#queued]) {
      if (p === null) continue;
      clearTimeout(p.timers.watchdog);
      clearTimeout(p.timers.rearm);
      clearTimeout(p.timers.lockWatch);
      p.reject(e);
    }
    this.#running = null;
    this.#queued = null;
    this.#closed?.();
  }
}
