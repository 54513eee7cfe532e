/**
 * The messages between a worker executor (workerexecutor.ts, on the engine's
 * thread) and the Worker that hosts PGlite (executor-worker.ts): opening
 * the instance, execs and their streamed answers when they do not fit the
 * shared channel (channel.ts), group commit's fdatasyncs and the close.
 *
 * Types only: both sides import them, neither imports the other.
 */

import type { PgliteAssetSources } from "./assets.ts";
import type { ImageSource } from "./image.ts";
import type { InstanceExecOptions } from "./instancetypes.ts";
import type { SharedInterruptTarget } from "./interrupt.ts";
import type { BackendSignal } from "./backends.ts";
import type { GucChange } from "./gucwatch.ts";
import type { TempSpan } from "./tempnamespace.ts";
import type { SettingFiles } from "./settingsource.ts";

/** Messages from the worker (executor-worker.ts). */
export type WorkerReply =
  | {
    t: "ready";
    tempShared: string | null;
    requested: number;
    durable: number;
    interrupt: SharedInterruptTarget | null;
    /** The open's steps and when each ended (ms since the epoch), when "open" asked for them. */
    trace: [string, number][] | null;
  }
  | { t: "failed"; message: string }
  | { t: "data"; seq: number; bytes: Uint8Array; wal: number }
  | {
    t: "done";
    seq: number;
    bytes: Uint8Array | null;
    error: string | null;
    signals: readonly BackendSignal[];
    temp: TempSpan | null;
    gucs: GucChange | null;
    /** The last WAL ticket issued when the answer was complete. */
    wal: number;
  }
  /** Every WAL ticket up to `durable` is on disk (the Worker synced them itself: WAL before data). */
  | { t: "wal"; durable: number }
  /** An fdatasync of the WAL on the Worker failed. */
  | { t: "wal-failed"; message: string }
  | { t: "closed" };

/** Messages to the worker. */
export type WorkerRequest =
  | {
    t: "open";
    dataDir: string;
    cell: SharedArrayBuffer;
    /** The exec channel (channel.ts). */
    channel: SharedArrayBuffer;
    /** The COPY FROM STDIN feed (copyfeed.ts). */
    feed: SharedArrayBuffer;
    /** The WAL fdatasyncs asked of the engine's thread, and how far they went (walsyncs.ts). */
    walRequests: SharedArrayBuffer;
    settings: Record<string, string>;
    /** The settings pgts's files set, with file and line (settingsource.ts). */
    settingFiles: SettingFiles;
    image: ImageSource | null;
    database: string | null;
    /** Microseconds to poll for the next exec before sleeping (channel.ts; pgts.engine_spin_time). */
    spinUs: number;
    /** The CPUs the Worker keeps to, or null (cpuaffinity.ts; pgts.engine_cpu_affinity). */
    cpus: number[] | null;
    /** This realm's registered PGlite assets (assets.ts), for the worker's realm. */
    assets: PgliteAssetSources | null;
    /** The start-up tracer is on: "ready" carries the open's steps (core/starttrace.ts). */
    trace?: boolean;
  }
  /**
   * pglite.wasm as this realm compiled it (sharedheap.ts), sent after
   * "open" so that the Worker boots while it compiles; null: compile it there.
   */
  | { t: "module"; module: WebAssembly.Module | null }
  | {
    t: "exec";
    seq: number;
    bytes: Uint8Array;
    options: InstanceExecOptions;
  }
  /** The CPUs to keep to from now on (cpuaffinity.ts). */
  | { t: "cpus"; cpus: number[] }
  | { t: "close" };
