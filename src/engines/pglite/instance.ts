/**
 * Opens the one PGlite instance of an engine, with the host-call hooks that
 * make a running statement cancellable and the engine guards (guard.ts)
 * that keep each session to the role it logged in as and refuse what would
 * stop the engine.
 *
 * PGlite runs Postgres synchronously on the calling thread, so nothing on
 * that thread can interrupt a statement. What can: Postgres calls out to the
 * host (clock reads, file I/O) all the time, pg_sleep and every timed wait
 * busy-poll `clock_time_get`. The hooks wrap those imports; when the cancel
 * cell (interrupt.ts) names the exec in flight, the hook sets Postgres's own
 * `QueryCancelPending`/`InterruptPending` flags, exactly what the SIGINT
 * handler does, and moves the monotonic clock forward so a timed wait ends
 * now instead of at its timeout. The next CHECK_FOR_INTERRUPTS raises 57014.
 *
 * A statement that computes without any host call (a pure in-memory loop)
 * makes no hook run. With `sharedHeap` (PGlite in a Worker), Postgres's heap
 * is a shared memory (sharedheap.ts) and the thread that asks for the
 * cancel sets the flags itself (`interruptTarget`); inline, such a statement
 * cannot be cancelled until it makes a host call.
 *
 * `setitimer` is disabled: Postgres's own timeouts (statement_timeout,
 * lock_timeout, idle_in_transaction_session_timeout) would fire as
 * Emscripten timers between two sessions' statements and could FATAL the
 * single backend that all sessions share. pgts enforces the timeouts it
 * supports itself, on the host side.
 *
 * Durability: with `fsync` on (PostgreSQL's default; never for memory://)
 * Postgres runs without PGlite's `-F`, and the `__syscall_fdatasync` and
 * `fd_sync` imports, which PGlite's glue answers without syncing anything,
 * call fdatasync(2)/fsync(2) on the real file behind a NODEFS stream
 * (wrapSyncImports). The WAL's own fdatasync, one per commit, is deferred
 * and done off this thread so that concurrent commits share one
 * (walflush.ts: group commit); each exec's answer carries the WAL ticket it
 * depends on (`walTicket`). A PANIC (a failed fsync, here or deferred)
 * ends the backend: every later exec fails, and the engine above must
 * reopen the cluster.
 *
 * Must never be used by two threads at once, and a data directory must have
 * exactly one instance open (PGlite takes no lock, and a second instance
 * on the same files corrupts the cluster; see cluster.ts).
 */

import { fdatasyncSync, fsyncSync } from "node:fs";
import { WalFlusher, type WalSyncer, WalWriter } from "./walflush.ts";
import { PGlite } from "@electric-sql/pglite";
import { pgliteAssetOptions } from "./assets.ts";
import { imageMemoryFs, type ImageSource } from "./image.ts";
import { loadExtensionBundles } from "./extensions.ts";
import { concat } from "./wire.ts";
import type { CopyFeedInput } from "./copyfeed.ts";
import { type IdentityGuard, installEngineGuards, WasmTools } from "./guard.ts";
import {
  type ActivityRow,
  type BackendEntry,
  type BackendFunctions,
  type BackendSignal,
  installBackendFunctions,
} from "./backends.ts";
import { type AdvisoryLocks, installAdvisoryLocks } from "./advisory.ts";
import { installEncodingGuard } from "./encoding.ts";
import {
  installTempNamespaces,
  type TempNamespaces,
  type TempPair,
  type TempSpan,
} from "./tempnamespace.ts";
import { pgliteWasmSha256 } from "./assets.ts";
import { waitEventAddress } from "./lockwait.ts";
import { endsWithReadyForQuery } from "../../core/protocol/pipeline.ts";
import {
  CANCEL_SEQ,
  ErrorWatch,
  type InterruptFlags,
  RUNNING_SEQ,
  settleRequest,
  type SharedInterruptTarget,
} from "./interrupt.ts";
import { sharedHeap, sharedPgliteModule, shareInstalledLibraries } from "./sharedheap.ts";
import { installShellCommands, recoveryLog } from "./recovery.ts";
import { mountDataDirectory } from "./backupfs.ts";
import { installArchiverReset } from "./pgstat_archiver.ts";
import { cacheFileSizes, type EmscriptenFsModes, type NodeFsOps } from "./filesize.ts";
import { forgetFailedCreates, type HostFs, leavePermissionsToTheHost } from "./hostfs.ts";
import { ENGINE_MAX_STACK_DEPTH, guardNativeStack } from "./stackguard.ts";

export interface InstanceOptions {
  /** The cancel cell (interrupt.ts), shared with the thread that requests cancels. */
  readonly cancelCell: Int32Array;
  /**
   * Put Postgres's heap in shared memory, so another thread can set its
   * interrupt flags during a statement (`interruptTarget`).
   */
  readonly sharedHeap?: boolean;
  /**
   * `-c name=value` server settings, as in postgresql.conf. `fsync` is
   * PostgreSQL's (default on; always off for memory://): see durableStart.
   */
  readonly settings?: Readonly<Record<string, string>>;
  /** A cluster image (image.ts) a memory:// data directory starts from, instead of PGlite's initdb. */
  readonly image?: ImageSource;
  /** The database of the cluster the backend serves (PGlite's default: "postgres"). */
  readonly database?: string;
  /** Group commit: every WAL ticket up to `durable` is on disk (walflush.ts). */
  readonly onWalDurable?: (durable: number) => void;
  /** Group commit: a deferred fdatasync of the WAL failed (the PANIC's message); the backend is ended. */
  readonly onWalFailure?: (message: string) => void;
  /** Group commit: where the background fdatasync runs (default: this thread's I/O pool). */
  readonly walSyncer?: WalSyncer;
  /** With `walSyncer`: the last ticket it made durable, as that thread writes it. */
  readonly walDurable?: BigInt64Array;
}

export interface PGliteInstance {
  readonly db: PGlite;
  /** The shared heap and where its interrupt flags are; null unless `sharedHeap`. */
  readonly interruptTarget: SharedInterruptTarget | null;
  /**
   * Why temporary objects are shared by all sessions (tempnamespace.ts), or
   * null when each session has its own.
   */
  readonly tempShared: string | null;
  /**
   * Runs raw frontend messages; `onData` gets copies of the backend bytes.
   * Resolves with the signals the exec sent to other sessions (backends.ts)
   * and the temporary namespaces the backend has after it. A
   * `CopyFeedInput` (copyfeed.ts) is input that grows while it runs.
   */
  exec(
    seq: number,
    bytes: Uint8Array | CopyFeedInput,
    onData: (chunk: Uint8Array) => void,
    options: InstanceExecOptions,
  ): Promise<InstanceExecResult>;
  /**
   * The last WAL ticket issued (walflush.ts): an answer produced now may
   * be released only once `onWalDurable` reached it. 0 without fsync.
   */
  walTicket(): number;
  /** Every WAL ticket up to this one is on disk. */
  walDurable(): number;
  close(): Promise<void>;
}

export interface InstanceExecResult {
  readonly signals: BackendSignal[];
  /**
   * The backend's temporary namespaces at the exec's start and end, when
   * PostgreSQL changed them during it; else null.
   */
  readonly temp: TempSpan | null;
}

export interface InstanceExecOptions {
  /**
   * The OID of the login role of the session whose bytes these are, or null
   * for pgts's own work (guard.ts).
   */
  readonly runAs: number | null;
  /** The pid of the session whose bytes these are (pg_backend_pid()), or null for pgts's own work. */
  readonly pid: number | null;
  /** The engine's sessions, when they changed since the last exec that passed them. */
  readonly backends?: readonly BackendEntry[];
  /** pg_stat_activity's rows, when the input reads them. */
  readonly activity?: readonly ActivityRow[];
  /** Put the shipped extension bundles into the file system first (extensions.ts). */
  readonly loadExtensions?: boolean;
  /**
   * The temporary namespaces of the session whose bytes these are
   * (tempnamespace.ts); without it the backend keeps the ones it has.
   */
  readonly temp?: TempPair;
  /**
   * statement_timeout: after this many ms the exec is cancelled as a cancel
   * request would cancel it; 0 for none.
   */
  readonly timeoutMs: number;
  /** The exec's input is a CopyFeedInput (the worker builds it; copyfeed.ts). */
  readonly feed?: boolean;
}

/** One hour in nanoseconds: how far a cancel moves the monotonic clock. */
const CLOCK_JUMP_NS = 3_600_000_000_000n;
const CLOCK_MONOTONIC = 1;
/**
 * How often a standing cancel moves the clock again (see `trip`). Each
 * move is an hour: a request that stands for minutes (interrupts held)
 * adds years, far from the 292 years an int64 of nanoseconds holds.
 */
const CLOCK_REJUMP_MS = 10;

type Imports = Record<string, Record<string, unknown>>;
type InstantiateWasm = (
  imports: Imports,
  done: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void,
) => unknown;

export async function openInstance(
  dataDir: string,
  options: InstanceOptions,
): Promise<PGliteInstance> {
  const cell = options.cancelCell;
  let memory: WebAssembly.Memory | null = null;
  // Set by the instantiate hook below; an object, so the compiler sees it may change.
  const captured: { wasm: WebAssembly.Instance | null } = { wasm: null };
  let flags: InterruptFlags | null = null;
  const shared = options.sharedHeap === true;
  // Compiled while PGlite loads its file bundle (awaited in the hook below).
  const sharedModule = shared ? sharedPgliteModule() : null;
  sharedModule?.catch(() => {});
  let clockShift = 0n;
  // Whether the exec in flight has been asked to stop (its clock moved),
  // and when (performance.now()) the clock last moved.
  let tripped = false;
  let jumpedAt = 0;
  const { durable, settings } = durableStart(dataDir, options.settings ?? {});
  // Set once PGlite is up; from then on an abort means the backend ended.
  let started = false;
  let ended: string | null = null;
  let emscriptenFs: { fs: EmscriptenFs; nodefs: NodeFs } | null = null;
  const flusher = durable
    ? new WalFlusher(
      options.walSyncer !== undefined
        ? {
          syncer: options.walSyncer,
          ...(options.walDurable !== undefined ? { syncedCell: options.walDurable } : {}),
        }
        : {},
    )
    : null;
  if (flusher !== null) {
    flusher.onProgress = options.onWalDurable ?? null;
    flusher.onFailure = (message) => {
      ended ??= `PANIC: ${message}`;
      options.onWalFailure?.(message);
    };
  }

  const setFlags = (v: number) => {
    if (memory === null || flags === null) return;
    const view = new DataView(memory.buffer);
    view.setInt32(flags.cancel, v, true);
    view.setInt32(flags.interrupt, v, true);
    // SetLatch, as PostgreSQL's StatementCancelHandler does (interrupt.ts).
    const latch = v !== 0 && flags.latch !== 0 ? view.getUint32(flags.latch, true) : 0;
    if (latch !== 0) view.setInt32(latch, 1, true);
  };
  const flagsSet = () =>
    memory !== null && flags !== null &&
    new DataView(memory.buffer).getInt32(flags.cancel, true) !== 0;
  // The request stands until the exec ends or answers an error (interrupt.ts):
  // flags Postgres dropped before the statement began are set again here.
  //
  // The clock's jump is PostgreSQL's SetLatch: it ends a timed wait that
  // began before it. A wait that begins after it, while the flags wait
  // for a CHECK_FOR_INTERRUPTS (pg_sleep reads the time, then waits),
  // would run its whole length, so while the request stands the clock
  // moves again every CLOCK_REJUMP_MS: such a wait ends at its first
  // reading after that, and its caller's next CHECK_FOR_INTERRUPTS
  // raises the cancel. (A cancel that reached a pg_sleep(30) within
  // milliseconds of its start was otherwise acted on 30 s later.)
  const trip = () => {
    if (memory === null || flags === null) return;
    const set = flagsSet();
    const now = performance.now();
    if (tripped && set && now - jumpedAt < CLOCK_REJUMP_MS) return;
    tripped = true;
    if (!set) setFlags(1);
    // Permanent, so the clock stays monotonic: a wait that started before
    // the jump sees its deadline pass; later durations are unaffected.
    clockShift += CLOCK_JUMP_NS;
    jumpedAt = now;
  };
  // statement_timeout of the exec in flight (performance.now() ms, 0: none).
  // Checked at the same host calls as a cancel, so it needs no timer on
  // this thread, which the statement itself occupies (with a shared heap,
  // the executor's watchdog covers a statement without host calls).
  let deadline = 0;
  const check = () => {
    const want = Atomics.load(cell, CANCEL_SEQ);
    const running = Atomics.load(cell, RUNNING_SEQ);
    if (want !== 0 && want === running) trip();
    else if (deadline !== 0 && performance.now() >= deadline) {
      deadline = 0;
      Atomics.compareExchange(cell, CANCEL_SEQ, 0, running);
      trip();
    }
  };

  const hooks = {
    name: "pgts-interrupts",
    setup: async (_pg: unknown, emscriptenOpts: Record<string, unknown>) => {
      const compiled = sharedModule === null ? null : await sharedModule;
      const pglites = emscriptenOpts["instantiateWasm"] as InstantiateWasm;
      memory = emscriptenOpts["wasmMemory"] as WebAssembly.Memory;
      if (compiled !== null) memory = sharedHeap(memory.buffer.byteLength / 65536);
      const heap = memory;
      // PGlite's own instantiation compiles (or takes) the stock module,
      // whose memory import is not shared.
      const instantiate: InstantiateWasm = compiled === null ? pglites : (imports, done) => {
        WebAssembly.instantiate(compiled, imports as WebAssembly.Imports).then(
          (instance) => done(instance, compiled),
        );
        return {};
      };
      const wrapped: InstantiateWasm = (imports, done) => {
        // `env` and `wasi_snapshot_preview1` are the same object in this build.
        const env = imports["env"]!;
        const clock = env["clock_time_get"] as (id: number, p: bigint, ptr: number) => number;
        env["clock_time_get"] = (id: number, precision: bigint, ptr: number) => {
          check();
          const r = clock(id, precision, ptr);
          if (clockShift !== 0n && id === CLOCK_MONOTONIC && memory !== null) {
            const v = new DataView(memory.buffer);
            v.setBigUint64(ptr, v.getBigUint64(ptr, true) + clockShift, true);
          }
          return r;
        };
        for (const name of ["fd_read", "fd_pread", "fd_write", "fd_pwrite"]) {
          const f = env[name] as ((...a: unknown[]) => unknown) | undefined;
          if (typeof f === "function") {
            env[name] = (...a: unknown[]) => {
              check();
              return f(...a);
            };
          }
        }
        env["_setitimer_js"] = () => 0;
        // A PANIC (a failed fsync of the WAL, for one) ends Postgres with
        // abort(), which PGlite's glue swallows; the backend is gone and the
        // next exec would never return. (exit() is no sign: PGlite calls it
        // in normal work, a COPY FROM STDIN for one.)
        const abort = env["_abort_js"] as ((...a: unknown[]) => unknown) | undefined;
        if (typeof abort === "function") {
          env["_abort_js"] = (...a: unknown[]) => {
            if (started) ended ??= "abort";
            return abort(...a);
          };
        }
        if (flusher !== null) wrapSyncImports(env, () => emscriptenFs, flusher);
        return instantiate(imports, (instance, module) => {
          captured.wasm = instance;
          const ex = instance.exports as Record<string, unknown>;
          const cancel = ex["QueryCancelPending"];
          const interrupt = ex["InterruptPending"];
          if (cancel instanceof WebAssembly.Global && interrupt instanceof WebAssembly.Global) {
            const latch = ex["MyLatch"];
            flags = {
              cancel: cancel.value as number,
              interrupt: interrupt.value as number,
              latch: latch instanceof WebAssembly.Global ? latch.value as number : 0,
            };
          }
          done(instance, module);
        });
      };
      const preRun = emscriptenOpts["preRun"] as
        | ((m: Record<string, unknown>) => void)[]
        | undefined;
      return {
        emscriptenOpts: {
          ...emscriptenOpts,
          instantiateWasm: wrapped,
          wasmMemory: heap,
          // The Module object Emscripten really uses: FS is set on it.
          preRun: [...(preRun ?? []), (m: Record<string, unknown>) => {
            emscriptenFs = { fs: m["FS"] as EmscriptenFs, nodefs: m["NODEFS"] as NodeFs };
            // An lseek(SEEK_END) per table per statement without an fstat each.
            if (m["NODEFS"] !== undefined) {
              cacheFileSizes(m["NODEFS"] as NodeFsOps, m["FS"] as EmscriptenFsModes);
              forgetFailedCreates(m["NODEFS"] as NodeFsOps, m["FS"] as HostFs);
            }
            if (m["NODEFS"] !== undefined && !dataDir.startsWith("memory://")) {
              mountDataDirectory(
                m["FS"] as Parameters<typeof mountDataDirectory>[0],
                m["NODEFS"],
                dataDir,
              );
            }
            // Archive recovery's restore_command, run for real (recovery.ts).
            if (recovering) {
              installShellCommands(m as Parameters<typeof installShellCommands>[0], dataDir);
            }
          }],
        },
      };
    },
  };

  const recovering = (settings["restore_command"] ?? "") !== "" && !dataDir.startsWith("memory://");
  const wasmSha256 = pgliteWasmSha256();
  const startParams = durable
    ? PGlite.defaultStartParams.filter((p) => p !== "-F")
    : [...PGlite.defaultStartParams];
  settings["max_stack_depth"] ??= ENGINE_MAX_STACK_DEPTH; // stackguard.ts
  for (const [k, v] of Object.entries(settings)) startParams.push("-c", `${k}=${v}`);
  const db = await PGlite.create({
    dataDir,
    startParams,
    ...(options.database !== undefined ? { database: options.database } : {}),
    // Embedded copies when a compiled binary registered them; otherwise
    // nothing, and PGlite finds its files under node_modules.
    ...(await pgliteAssetOptions()),
    ...(options.image !== undefined ? { fs: imageMemoryFs(options.image) } : {}),
    // deno-lint-ignore no-explicit-any -- PGlite's Extension type wants its own module types
    extensions: { pgtsInterrupts: hooks as any },
    // An archive recovery's progress and its end ("recovery stopping at
    // restore point …") are Postgres's log lines: into the server log,
    // while the engine opens (recovery.ts).
    ...(recovering
      ? { onStderr: (line: string) => recoveryLog(line, () => started, dataDir) }
      : {}),
  });
  if (flags === null || captured.wasm === null || memory === null) {
    await db.close();
    throw new Error("PGlite does not export QueryCancelPending/InterruptPending");
  }
  // hostfs.ts: the host's permissions decide, as for PostgreSQL on the host.
  const fsModule = (emscriptenFs as { fs: EmscriptenFs } | null)?.fs;
  if (fsModule !== undefined) leavePermissionsToTheHost(fsModule as unknown as HostFs);
  if (flusher?.failed != null) {
    // The WAL of the recovery could not be made durable: nothing may run.
    await flusher.close();
    throw new Error(`PANIC: ${flusher.failed}`);
  }
  guardNativeStack(
    (db as unknown as { mod: Record<string, unknown> }).mod,
    () => ended !== null,
    (why) => (ended ??= why),
  );
  let guard: IdentityGuard;
  let backends: BackendFunctions;
  let advisory: AdvisoryLocks;
  let temp: TempNamespaces | null = null;
  let tempShared: string | null;
  try {
    if (shared) shareInstalledLibraries(db);
    const tools = new WasmTools(captured.wasm, memory);
    guard = installEngineGuards(tools);
    installEncodingGuard(tools);
    backends = installBackendFunctions(tools, {
      cancelSelf: () => {
        tripped = true;
        setFlags(1);
      },
    });
    advisory = installAdvisoryLocks(tools);
    // pg_stat_reset_shared('archiver') resets pgts's archiver too.
    if (fsModule !== undefined) {
      installArchiverReset(
        tools,
        fsModule as unknown as Parameters<typeof installArchiverReset>[1],
      );
    }
    const installed = await installTempNamespaces(
      tools,
      await wasmSha256,
      async (sql) => (await db.query<Record<string, unknown>>(sql)).rows,
    );
    if (typeof installed === "string") tempShared = installed;
    else {
      temp = installed;
      tempShared = null;
    }
  } catch (e) {
    await db.close();
    throw e;
  }

  started = true;
  // synchronous_commit = off: PostgreSQL's WAL writer (walflush.ts).
  let executing = false;
  const walWriter = dataDir.startsWith("memory://") ? null : new WalWriter(
    captured.wasm.exports,
    walWriterDelayMs(settings["wal_writer_delay"]),
    () => !executing && ended === null,
  );
  const endedError = () =>
    new Error(`the engine's backend ended (${ended}); the cluster must be reopened`);
  let extensionsLoaded = false;
  // Set by the hooks during create (the compiler cannot see that).
  const heapBuffer = (memory as WebAssembly.Memory | null)?.buffer;
  const heapFlags = flags as InterruptFlags | null;
  const myProc = captured.wasm.exports["MyProc"];
  const interruptTarget = shared && heapFlags !== null && heapBuffer instanceof SharedArrayBuffer
    ? {
      heap: heapBuffer,
      ...heapFlags,
      waitEvent: myProc instanceof WebAssembly.Global
        ? waitEventAddress(new DataView(heapBuffer), myProc.value as number, await wasmSha256)
        : 0,
    }
    : null;
  return {
    db,
    tempShared,
    interruptTarget,
    async exec(seq, bytes, onData, options) {
      if (ended !== null) throw endedError();
      if (options.loadExtensions === true && !extensionsLoaded) {
        extensionsLoaded = true;
        loadExtensionBundles(db, { sharedHeap: shared });
      }
      Atomics.store(cell, RUNNING_SEQ, seq);
      executing = true;
      // pgts's own SQL (a settings switch) writes no WAL worth a flush.
      if (options.pid !== null) walWriter?.noteExec();
      guard.runAs(options.runAs);
      backends.runAs(options.pid);
      advisory.runAs(options.pid);
      if (options.backends !== undefined) {
        backends.setBackends(options.backends);
        advisory.keepOnly(options.backends.map((b) => b.pid));
      }
      backends.setActivity(options.activity ?? null);
      if (temp !== null && options.temp !== undefined) temp.use(options.temp);
      const tempBefore = temp?.carried() ?? null;
      deadline = options.timeoutMs > 0 ? performance.now() + options.timeoutMs : 0;
      tripped = false;
      // The end of this exec's answer: a PANIC's text is there if the backend ends.
      const answer: Uint8Array[] = [];
      try {
        // syncToFs: false is safe for the filesystems pgts opens (NODEFS and
        // memory): their syncToFs is a no-op; every write already reached
        // the OS. See engine.ts for the durability note.
        // Whether the answer so far ends at ReadyForQuery 'I' (read before
        // onData, which may hand the chunk's buffer to another thread).
        const at = { idle: false };
        const errors = new ErrorWatch();
        // A CopyFeedInput is read as PGlite reads a message (copyfeed.ts).
        await db.execProtocolRawStream(bytes as Uint8Array, {
          syncToFs: false,
          onRawData: (raw) => {
            const chunk = raw.slice();
            at.idle = endsWithReadyForQuery(chunk) && chunk[chunk.length - 1] === 0x49;
            // An error out: a cancel asked of this exec has acted (or is moot).
            if (errors.feed(chunk) && Atomics.load(cell, CANCEL_SEQ) === seq) {
              settleRequest(cell, seq, { ended: false, clear: () => setFlags(0) });
            }
            answer.push(chunk);
            if (answer.length > 4) answer.shift();
            onData(chunk);
          },
        }).catch((e) => {
          // A FATAL ends Postgres with exit(), which reaches here as
          // Emscripten's ExitStatus: PostgreSQL's backend would be gone, and
          // PGlite's is left mid-message, answering every later exec with
          // the same FATAL in a loop that never returns (a protocol
          // violation inside a COPY did that). So it ends the backend, as
          // a PANIC does, and the cluster is reopened.
          if ((e as { name?: unknown } | null)?.name === "ExitStatus") {
            ended ??= `FATAL: ${severeText(answer, "FATAL") ?? "exit() during an exec"}`;
          }
          // A backend that ended mid-exec (stackguard.ts) stops it with a throw.
          if (ended === null) throw e;
        });
        if (ended !== null) {
          const panic = severeText(answer, "PANIC");
          if (panic !== null) ended = `PANIC: ${panic}`;
          throw endedError();
        }
        // Transaction-level advisory locks end with the session's transaction.
        if (options.pid !== null && at.idle) advisory.endTransaction(options.pid);
        // Only a change is reported: most execs then send nothing more
        // than their answer (channel.ts).
        const tempAfter = temp?.carried() ?? null;
        return {
          signals: backends.takeSignals(),
          temp: tempBefore === null || tempAfter === null ||
              (tempBefore[0] === tempAfter[0] && tempBefore[1] === tempAfter[1])
            ? null
            : { before: tempBefore, after: tempAfter },
        };
      } finally {
        temp?.afterExec();
        guard.runAs(null);
        backends.runAs(null);
        advisory.runAs(null);
        deadline = 0;
        executing = false;
        // A cancel must never reach the next exec, which may be another
        // session's: clear a request that came too late, and Postgres's
        // flags if they were set after its last CHECK_FOR_INTERRUPTS (by
        // this thread or, with a shared heap, by the requesting one).
        settleRequest(cell, seq, {
          ended: true,
          clear: () => {
            if (tripped || (shared && flagsSet())) setFlags(0);
          },
        });
        tripped = false;
      }
    },
    walTicket: () => flusher?.requested ?? 0,
    walDurable: () => flusher?.durable ?? 0,
    // An ended backend cannot shut down (that runs SQL); the next opener
    // recovers from the WAL, as after a crash.
    async close() {
      walWriter?.stop();
      try {
        if (ended === null) await db.close();
      } finally {
        await flusher?.close();
      }
    },
  };
}

/** The part of Emscripten's FS the sync hooks use. */
interface EmscriptenFs {
  getStream(fd: number): EmscriptenStream | null | undefined;
  isFile(mode: number): boolean;
}
/** Emscripten's NODEFS: its streams' operations identify them. */
interface NodeFs {
  readonly stream_ops: unknown;
  /** The host path of a node of NODEFS. */
  realPath(node: unknown): string;
}
interface EmscriptenStream {
  readonly nfd?: number;
  /** The path in Emscripten's file system (PGDATA's files are under /pglite/data). */
  readonly path?: string;
  readonly stream_ops?: unknown;
  readonly node?: { readonly mode: number };
}

const BOOL_ON = new Set(["on", "true", "yes", "1", "t", "y", "tru", "ye"]);

/**
 * Whether Postgres fsyncs, and the settings it starts with. PostgreSQL's
 * `fsync` (default on): on starts PGlite without its `-F` (which forces
 * fsync off) and with `-c fsync=on`, and makes the sync imports real. A
 * memory:// cluster has nothing to make durable: always off there, as `-F`.
 */
export function durableStart(
  dataDir: string,
  given: Readonly<Record<string, string>>,
): { durable: boolean; settings: Record<string, string> } {
  const memory = dataDir.startsWith("memory://");
  const asked = given["fsync"];
  const durable = !memory && (asked === undefined || BOOL_ON.has(asked.trim().toLowerCase()));
  const settings = { ...given };
  delete settings["fsync"];
  if (durable) settings["fsync"] = "on";
  return { durable, settings };
}

/** wal_writer_delay in ms (PostgreSQL's default 200 ms; a bare number is ms, as in PostgreSQL). */
export function walWriterDelayMs(value: string | undefined): number {
  const m = /^\s*(\d+)\s*(ms|s|min)?\s*$/.exec(value ?? "");
  if (m === null) return 200;
  const n = Number(m[1]) * (m[2] === "s" ? 1000 : m[2] === "min" ? 60_000 : 1);
  return Math.min(Math.max(n, 1), 10_000);
}

/** WASI errno values (Emscripten's errno numbering). */
const WASI_ERRNO: Readonly<Record<string, number>> = {
  EBADF: 8,
  EDQUOT: 19,
  EINVAL: 28,
  EIO: 29,
  ENOSPC: 51,
  EROFS: 69,
};
const WASI_EIO = 29;

function errnoOf(e: unknown): number {
  const code = (e as { code?: unknown } | null)?.code;
  return (typeof code === "string" ? WASI_ERRNO[code] : undefined) ?? WASI_EIO;
}

/**
 * Makes Postgres's fsync and fdatasync real. PGlite's Emscripten glue
 * answers `__syscall_fdatasync` with success without doing anything, and
 * `fd_sync` (fsync) calls the stream's own `fsync`, which NODEFS does not
 * have. A NODEFS stream carries the real file descriptor (`nfd`), so the
 * hooks call fdatasync(2)/fsync(2) on it. A directory is fsynced too (what
 * makes a new or renamed WAL segment's name durable); its failure is
 * ignored, as PostgreSQL ignores EBADF/EINVAL for directories. Other
 * streams (MEMFS, devices) keep the glue's behaviour. A failure on a file
 * reaches Postgres as the syscall's error: Postgres PANICs, as it must
 * (after a failed fsync the kernel may have dropped the dirty pages), and
 * the engine's crash handling restarts from the WAL.
 *
 * The fdatasync of a WAL segment (`issue_xlog_fsync`, every commit's) is
 * the exception: it is deferred to `flusher` (group commit). So that the
 * WAL still reaches the disk before the data it covers, every other change
 * to the data directory first makes the deferred WAL durable (see
 * walflush.ts): writes to files outside pg_wal, truncates, renames,
 * unlinks, fallocate, and the creation of a file.
 */
function wrapSyncImports(
  env: Record<string, unknown>,
  fsOf: () => { fs: EmscriptenFs; nodefs: NodeFs } | null,
  flusher: WalFlusher,
): void {
  const streamOf = (
    fd: number,
  ): { stream: EmscriptenStream; nodefs: NodeFs; fs: EmscriptenFs } | null => {
    const found = fsOf();
    if (found === null) return null;
    let stream: EmscriptenStream | null | undefined;
    try {
      stream = found.fs.getStream(fd);
    } catch {
      return null;
    }
    if (
      stream === null || stream === undefined || typeof stream.nfd !== "number" ||
      stream.stream_ops !== found.nodefs.stream_ops
    ) return null;
    return { stream, nodefs: found.nodefs, fs: found.fs };
  };
  const wrap = (name: string, sync: (nfd: number) => void, negative: boolean) => {
    const original = env[name] as ((fd: number) => number) | undefined;
    if (typeof original !== "function") throw new Error(`PGlite does not import "${name}"`);
    const deferWal = name === "__syscall_fdatasync";
    env[name] = (fd: number) => {
      const found = streamOf(fd);
      if (found === null) return original(fd);
      const { stream, fs, nodefs } = found;
      const file = stream.node !== undefined && fs.isFile(stream.node.mode);
      const path = stream.path ?? "";
      if (deferWal && file && isWalSegment(path)) {
        const code = flusher.defer(nodefs.realPath(stream.node), walName(path));
        if (code === null) return 0;
        const errno = WASI_ERRNO[code] ?? WASI_EIO;
        return negative ? -errno : errno;
      }
      try {
        sync(stream.nfd!);
      } catch (e) {
        if (!file) return 0;
        const errno = errnoOf(e);
        return negative ? -errno : errno;
      }
      return 0;
    };
  };
  // A syscall answers -errno; a WASI call answers errno.
  wrap("__syscall_fdatasync", fdatasyncSync, true);
  wrap("fd_sync", fsyncSync, false);

  // WAL before data: what must wait for the deferred WAL fdatasync.
  const before = (
    name: string,
    negative: boolean,
    applies: (...a: number[]) => boolean,
  ) => {
    const original = env[name] as ((...a: number[]) => number) | undefined;
    if (typeof original !== "function") throw new Error(`PGlite does not import "${name}"`);
    env[name] = (...a: number[]) => {
      if (flusher.pending && applies(...a) && !flusher.force()) {
        return negative ? -WASI_EIO : WASI_EIO;
      }
      return original(...a);
    };
  };
  const dataFile = (fd: number) => {
    const found = streamOf(fd);
    return found !== null && !isWalSegment(found.stream.path ?? "");
  };
  before("fd_write", false, dataFile);
  before("fd_pwrite", false, dataFile);
  before("__syscall_ftruncate64", true, () => true);
  before("__syscall_truncate64", true, () => true);
  before("__syscall_fallocate", true, () => true);
  before("__syscall_renameat", true, () => true);
  before("__syscall_unlinkat", true, () => true);
  before("__syscall_openat", true, (_dirfd, _path, flags) => ((flags ?? 0) & O_CREAT) !== 0);
}

/** O_CREAT in Emscripten's (musl's) numbering. */
const O_CREAT = 0o100;

/** Whether an Emscripten path names a file in pg_wal (a segment, not archive_status). */
function isWalSegment(path: string): boolean {
  const at = path.lastIndexOf("/pg_wal/");
  return at >= 0 && path.indexOf("/", at + 8) < 0;
}

/** A WAL file's name as Postgres's messages give it (relative to the data directory). */
function walName(path: string): string {
  return path.slice(path.lastIndexOf("/pg_wal/") + 1);
}

/** The message of the first ErrorResponse of `severity` in `chunks` (backend messages), if any. */
function severeText(chunks: readonly Uint8Array[], severity: "PANIC" | "FATAL"): string | null {
  // A chunk handed to another thread (the Worker posts them) is detached: empty here.
  const buf = concat(chunks.filter((c) => c.byteLength > 0));
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dec = new TextDecoder();
  for (let at = 0; at + 5 <= buf.length;) {
    const end = at + 1 + view.getInt32(at + 1);
    if (end > buf.length) break;
    if (buf[at] === 0x45) {
      const fields = new Map<string, string>();
      for (const f of dec.decode(buf.subarray(at + 5, end)).split("\0")) {
        if (f !== "") fields.set(f[0]!, f.slice(1));
      }
      if (fields.get("V") === severity) return fields.get("M") ?? null;
    }
    at = end;
  }
  return null;
}
