/**
 * Where PGlite runs: `startExecutor` opens the executor of the placement
 * asked for (executor.ts), a Worker by default (workerexecutor.ts), and
 * this module is the `inline` one, PGlite on the calling thread. Inline,
 * an exec holds the thread until it ends: a cancel is only seen at the
 * statement's next host call, nothing pipelines, and COPY FROM STDIN
 * cannot be fed as it comes (no copyFeed).
 */

import { openInstance } from "./instance.ts";
import type { PGliteInstance } from "./instancetypes.ts";
import { CANCEL_SEQ, newCancelCell } from "./interrupt.ts";
import type { BackendSignal } from "./backends.ts";
import type { GucChange } from "./gucwatch.ts";
import { WalProgress } from "./groupcommit.ts";
import type { ExecOptions, ExecResult, ExecutorOptions, RawExecutor } from "./executor.ts";
import { instanceOptions } from "./executor.ts";
import { WorkerExecutor } from "./workerexecutor.ts";
import { YoungCollections } from "./gchint.ts";

/** Each statement's garbage on this thread, collected young (gchint.ts). */
const young = new YoungCollections();

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
  onSettingsChanged: ((change: GucChange) => void) | null = null;
  onRunning: ((owner: object | undefined) => void) | null = null;
  /** Unused: an inline exec holds this thread until it ends. */
  contended: (() => boolean) | null = null;
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
      ...(options.settingFiles !== undefined ? { settingFiles: options.settingFiles } : {}),
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
    young.note();
    this.#running = seq;
    let result: Awaited<ReturnType<PGliteInstance["exec"]>>;
    const instance = this.#instance;
    const wal = this.wal;
    // Each chunk is handed on when the next comes, the last after the
    // exec: a change of settings is known only then, and its
    // ParameterStatus goes before the last ReadyForQuery.
    let held: Uint8Array | null = null;
    try {
      result = await instance.exec(seq, bytes, (chunk) => {
        if (held !== null) onData(held);
        wal.noteRequested(instance.walTicket());
        held = chunk;
      }, instanceOptions(options));
      wal.noteRequested(instance.walTicket());
    } catch (e) {
      if (held !== null) onData(held);
      throw e;
    } finally {
      this.#running = 0;
    }
    if (result.gucs !== null) this.onSettingsChanged?.(result.gucs);
    if (held !== null) onData(held);
    if (result.signals.length > 0) this.onSignals?.(result.signals);
    return { temp: result.temp, endedIdle: false, gucs: result.gucs };
  }

  interrupt(): void {
    if (this.#running !== 0) {
      Atomics.store(this.#cell, CANCEL_SEQ, this.#running);
      Atomics.notify(this.#cell, CANCEL_SEQ); // a timed wait blocked on it (cancelclock.ts)
    }
  }

  close(): Promise<void> {
    return this.#instance.close();
  }
}
