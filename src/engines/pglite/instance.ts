/**
 * Opens the one PGlite instance of an engine and runs its execs: the
 * host-call hooks that make a running statement cancellable (cancelclock.ts)
 * and its fsyncs real (fsync.ts), the engine guards (guard.ts) that keep
 * each session to the role it logged in as and refuse what would stop the
 * engine, and before each exec the session's identity, backends and
 * temporary namespaces.
 *
 * A statement that computes without any host call (a pure in-memory loop)
 * makes no hook run. With `sharedHeap` (PGlite in a Worker), Postgres's heap
 * is a shared memory (sharedheap.ts) and the thread that asks for the
 * cancel sets the flags itself (`interruptTarget`); inline, such a statement
 * cannot be cancelled until it makes a host call.
 *
 * Durability: each exec's answer carries the WAL ticket it depends on
 * (`walTicket`; group commit, walflush.ts). A PANIC (a failed fsync, here
 * or deferred) ends the backend: every later exec fails, and the engine
 * above must reopen the cluster.
 *
 * Must never be used by two threads at once, and a data directory must have
 * exactly one instance open (PGlite takes no lock, and a second instance
 * on the same files corrupts the cluster; see cluster.ts).
 */

import { WalFlusher, WalWriter, walWriterDelayMs } from "./walflush.ts";
import type { InstanceOptions, PGliteInstance } from "./instancetypes.ts";
import { CancelClock } from "./cancelclock.ts";
import { holdWallClock, wrapWallClock } from "./wallclock.ts";
import { wrapConversionSymbols } from "./conversions.ts";
import { durableStart, type EmscriptenFs, type NodeFs, wrapSyncImports } from "./fsync.ts";
import { PGlite } from "@electric-sql/pglite";
import { pgliteAssetOptions } from "./assets.ts";
import { imageMemoryFs } from "./image.ts";
import { loadExtensionBundles } from "./extensions.ts";
import { HeapTrimmer } from "./heaptrim.ts";
import { concat, fe } from "./wire.ts";
import { type IdentityGuard, installEngineGuards } from "./guard.ts";
import { installIcuKeywords } from "./icukeywords.ts";
import { WasmTools } from "./wasmtools.ts";
import {
  installUnseenPlaceholders,
  SessionPlaceholders,
  watchFunctionPlaceholders,
} from "./customsettings.ts";
import { installDatabaseGrantGuard } from "./databasegrants.ts";
import { installPortalNameGuard } from "./portalnames.ts";
import { installServerFileGuard } from "./serverfiles.ts";
import { type BackendFunctions, BackendTable, installBackendFunctions } from "./backends.ts";
import { advisoryKeyLimit, type AdvisoryLocks, installAdvisoryLocks } from "./advisory.ts";
import { installSessionResetValues, type SessionResetValues } from "./resetvalues.ts";
import { installSessionSequences, type SessionSequences } from "./sequences.ts";
import { installEncodingGuard } from "./encoding.ts";
import { installTempNamespaces, type TempNamespaces } from "./tempnamespace.ts";
import { pgliteWasmSha256 } from "./assets.ts";
import { waitEventAddress } from "./lockwait.ts";
import { installSessionPrng, type SessionPrng } from "./prng.ts";
import { installTempBuffersGuard, type TempBuffersGuard } from "./tempbuffers.ts";
import { findStatementTimer } from "./statementtimer.ts";
import { endsWithReadyForQuery } from "../../core/protocol/pipeline.ts";
import { BE } from "../../core/protocol/constants.ts";
import { ErrorWatch, type InterruptFlags } from "./interrupt.ts";
import { CopyFeedInput, UnfedInput } from "./copyfeed.ts";
import { sharedHeap, sharedPgliteModule, shareLibrariesOnOpen } from "./sharedheap.ts";
import { installShellCommands, recoveryLog } from "./recovery.ts";
import {
  clusterDirOf,
  clusterFileSettings,
  mountDataDirectory,
  showDataDirectory,
} from "./backupfs.ts";
import { markFileSettings } from "./settingsource.ts";
import { installDatabaseSizes, type SizeFs } from "./databasesize.ts";
import { ClientAddresses } from "./clientaddr.ts";
import { installArchiverReset } from "./pgstat_archiver.ts";
import { cacheFileSizes, type EmscriptenFsModes, type NodeFsOps } from "./filesize.ts";
import { forgetFailedCreates, type HostFs, leavePermissionsToTheHost } from "./hostfs.ts";
import {
  ENGINE_MAX_STACK_DEPTH,
  guardInvokes,
  guardNativeStack,
  installStackDepthLimit,
  type NativeOverflows,
  NO_OVERFLOWS,
} from "./stackguard.ts";
import { installJsonDepthGuard } from "./jsondepth.ts";
import { installQueryDepthGuard } from "./querydepth.ts";
import { applyConfigReload } from "./configreload.ts";
import { type GucChange, GucWatch } from "./gucwatch.ts";
import { PG_SETTINGS } from "../../core/guc/pg_settings.ts";

/**
 * PGlite's start parameters as pgts starts its engines: without `-F`
 * (fsync off) when durable, and without `-O`, which is
 * allow_system_table_mods = on: with it any role that may CREATE in a
 * database could make schemas named pg_… (a pg_temp_… among them, which
 * PostgreSQL takes for a temporary schema). pgts's own DDL in pg_catalog
 * and on temporary schemas sets it for its transaction.
 */
export function engineStartParams(durable: boolean): string[] {
  return PGlite.defaultStartParams.filter((p) => p !== "-O" && (!durable || p !== "-F"));
}

/** ReadyForQuery's status byte outside a transaction block. */
const IDLE = 0x49; // 'I'

type Imports = Record<string, Record<string, unknown>>;
type InstantiateWasm = (
  imports: Imports,
  done: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void,
) => unknown;

export async function openInstance(
  dataDir: string,
  options: InstanceOptions,
): Promise<PGliteInstance> {
  // Set by the instantiate hook below; an object, so the compiler sees it may change.
  const captured: { wasm: WebAssembly.Instance | null; tools: WasmTools | null } = {
    wasm: null,
    tools: null,
  };
  const shared = options.sharedHeap === true;
  const clock = new CancelClock(options.cancelCell, { shared });
  const trace = options.trace ?? (() => {});
  // Compiled while PGlite loads its file bundle (awaited in the hook below).
  const sharedModule = shared ? sharedPgliteModule() : null;
  sharedModule?.catch(() => {});
  const { durable, settings } = durableStart(dataDir, options.settings ?? {});
  // Set once PGlite is up; from then on an abort means the backend ended.
  let started = false;
  let ended: string | null = null;
  let emscriptenFs: { fs: EmscriptenFs; nodefs: NodeFs } | null = null;
  /** The data directory as mounted at its own path in the engine (backupfs.ts), or null. */
  let shownDataDir: string | null = null;
  const flusher = durable
    ? new WalFlusher(options.walRequests !== undefined ? { requests: options.walRequests } : {})
    : null;
  // A PANIC of the WAL's durability outside an exec (a failed deferred
  // fdatasync, the WAL writer's flush): the backend is gone.
  const walPanic = (message: string) => {
    ended ??= `PANIC: ${message}`;
    options.onWalFailure?.(message);
  };
  if (flusher !== null) {
    flusher.onProgress = options.onWalDurable ?? null;
    flusher.onFailure = walPanic;
  }

  // Set by the instantiate hook below (stackguard.ts).
  let overflows: NativeOverflows = NO_OVERFLOWS;
  const hooks = {
    name: "pgts-interrupts",
    setup: async (_pg: unknown, emscriptenOpts: Record<string, unknown>) => {
      trace("PGlite's file bundle loaded");
      const compiled = sharedModule === null ? null : await sharedModule;
      trace("pglite.wasm compiled (in hand)");
      const pglites = emscriptenOpts["instantiateWasm"] as InstantiateWasm;
      const given = emscriptenOpts["wasmMemory"] as WebAssembly.Memory;
      const heap = compiled !== null ? sharedHeap(given.buffer.byteLength / 65536) : given;
      clock.memory = heap;
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
        wrapWallClock(env, () => clock.memory);
        overflows = guardInvokes(env, () => captured.tools);
        wrapConversionSymbols(env, () => captured.tools);
        clock.wrapImports(env);
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
          trace("pglite.wasm instantiated");
          captured.wasm = instance;
          const ex = instance.exports as Record<string, unknown>;
          const cancel = ex["QueryCancelPending"];
          const interrupt = ex["InterruptPending"];
          if (cancel instanceof WebAssembly.Global && interrupt instanceof WebAssembly.Global) {
            const latch = ex["MyLatch"];
            clock.flags = {
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
            trace("Emscripten runtime up (preRun)");
            emscriptenFs = { fs: m["FS"] as EmscriptenFs, nodefs: m["NODEFS"] as NodeFs };
            // An lseek(SEEK_END) per table per statement without an fstat each.
            if (m["NODEFS"] !== undefined) {
              cacheFileSizes(m["NODEFS"] as NodeFsOps, m["FS"] as EmscriptenFsModes);
              forgetFailedCreates(m["NODEFS"] as NodeFsOps, m["FS"] as HostFs);
            }
            if (m["NODEFS"] !== undefined && !dataDir.startsWith("memory://")) {
              shownDataDir = mountDataDirectory(
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
  const startParams = engineStartParams(durable);
  settings["max_stack_depth"] ??= ENGINE_MAX_STACK_DEPTH; // stackguard.ts
  // PostgreSQL's default, where PGlite's start parameters say public alone:
  // a role's own schema comes first, as in PostgreSQL.
  settings["search_path"] ??= '"$user", public';
  if (!dataDir.startsWith("memory://") && options.image === undefined) {
    // PGlite's own file's settings, under pgts's (backupfs.ts).
    const ours = new Set(Object.keys(settings).map((k) => k.toLowerCase()));
    for (const [k, v] of Object.entries(clusterFileSettings(dataDir))) {
      if (!ours.has(k)) settings[k] = v;
    }
  }
  for (const [k, v] of Object.entries(settings)) startParams.push("-c", `${k}=${v}`);
  trace("PGlite.create begun");
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
  trace("PGlite.create done (Postgres started)");
  const memory = clock.memory;
  const flags = clock.flags;
  if (flags === null || captured.wasm === null || memory === null) {
    await db.close();
    throw new Error("PGlite does not export QueryCancelPending/InterruptPending");
  }
  // Postgres's own statement timer (statementtimer.ts), registered by now;
  // static data lies below the heap's base.
  const heapBase = captured.wasm.exports["__heap_base"];
  // The heap's free pages, given back once the engine rests (heaptrim.ts).
  let trimmer: HeapTrimmer | null = null;
  if (heapBase instanceof WebAssembly.Global) {
    clock.statementTimer = findStatementTimer(
      new DataView(memory.buffer),
      heapBase.value as number,
      await wasmSha256,
    );
    trimmer = HeapTrimmer.open(memory, heapBase.value as number, await wasmSha256);
  }
  // The backend's wait event: timed waits sleep instead of spinning on the
  // clock (cancelclock.ts), and a shared heap's executor watches lock waits.
  const procGlobal = captured.wasm.exports["MyProc"];
  if (procGlobal instanceof WebAssembly.Global) {
    clock.waitEvent = waitEventAddress(
      new DataView(memory.buffer),
      procGlobal.value as number,
      await wasmSha256,
    );
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
    (db as unknown as { POSTGRES_MAIN_LONGJMP: number }).POSTGRES_MAIN_LONGJMP,
    overflows,
  );
  let guard: IdentityGuard;
  let backends: BackendFunctions;
  let advisory: AdvisoryLocks;
  let sequences: SessionSequences | null = null;
  let prng: SessionPrng | null = null;
  let tempBuffers: TempBuffersGuard | null = null;
  /** Which session made which custom placeholder (customsettings.ts). */
  const placeholders = new SessionPlaceholders();
  let resets: SessionResetValues | null = null;
  let temp: TempNamespaces | null = null;
  let tempShared: string | null;
  let gucs: GucWatch;
  let tools: WasmTools;
  let clientAddresses: ClientAddresses | null = null;
  /** The engine's sessions by pid, as the execs' updates gave them (procarray.ts). */
  const sessions = new BackendTable();
  try {
    if (shared) shareLibrariesOnOpen(db);
    tools = captured.tools = new WasmTools(captured.wasm, memory);
    guard = installEngineGuards(tools);
    installStackDepthLimit(tools);
    installIcuKeywords(tools);
    installEncodingGuard(tools);
    installJsonDepthGuard(tools);
    installQueryDepthGuard(tools);
    backends = installBackendFunctions(tools, { cancelSelf: () => clock.cancelSelf(), sessions });
    installServerFileGuard(tools);
    const running = backends;
    installPortalNameGuard(tools, () => running.runningPrefix());
    installUnseenPlaceholders(tools, placeholders);
    watchFunctionPlaceholders(tools, placeholders);
    installDatabaseGrantGuard(tools, {
      running: () => running.runningPrefix() !== null,
      databasesChanged: () => running.databasesChanged(),
    });
    advisory = installAdvisoryLocks(tools, advisoryKeyLimit(settings));
    const locks = advisory;
    backends.setAdvisoryRows(() => locks.rows());
    // currval() and lastval() per session (sequences.ts); an unknown build shares them.
    const perSession = installSessionSequences(tools, await wasmSha256);
    if (typeof perSession !== "string") sequences = perSession;
    // pg_stat_reset_shared('archiver') resets pgts's archiver too.
    if (fsModule !== undefined) {
      installArchiverReset(
        tools,
        fsModule as unknown as Parameters<typeof installArchiverReset>[1],
      );
    }
    // pg_database_size() of the other databases (databasesize.ts).
    const ownDir = clusterDirOf(dataDir);
    if (fsModule !== undefined && ownDir !== null) {
      installDatabaseSizes(tools, fsModule as unknown as SizeFs, ownDir);
    }
    // SHOW data_directory and the configuration files' settings name the
    // directory of `pgts start -D`, as PostgreSQL's would (backupfs.ts).
    if (shownDataDir !== null) showDataDirectory(tools, shownDataDir);
    // pg_settings' source, sourcefile and sourceline of what the files set:
    // before the per-session reset values take the server's sources.
    const unmarked = markFileSettings(tools, options.settingFiles ?? {});
    if (unmarked !== null) trace(`settings' sources left as start parameters: ${unmarked}`);
    clientAddresses = ClientAddresses.install(
      memory,
      captured.wasm.exports["MyProcPort"],
      sessions,
    );
    trace("pgts's guards installed");
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
    // temp_buffers settable per session until it uses a temporary table
    // (tempbuffers.ts); an unknown build keeps the backend's one rule.
    const buffers = installTempBuffersGuard(tools);
    if (typeof buffers === "string") trace(`temp_buffers per backend: ${buffers}`);
    else tempBuffers = buffers;
    // random() and setseed() per session (prng.ts); a build where the
    // state is not found shares them.
    if (heapBase instanceof WebAssembly.Global) {
      const found = await installSessionPrng(
        tools,
        heapBase.value as number,
        await wasmSha256,
        () => db.query("select pg_catalog.setseed(0.5)"),
      );
      if (typeof found === "string") trace(`random() shared: ${found}`);
      else prng = found;
    }
    // Last: the parameters pg_settings lists, as generated from this
    // PGlite's (src/core/guc/pg_settings.ts; a query for them was ~17 ms of
    // every engine's start).
    gucs = new GucWatch(tools, PG_SETTINGS.map(([name]) => name));
    // What RESET goes back to, per session (resetvalues.ts); an unknown build keeps the server's.
    const perSessionResets = installSessionResetValues(tools, PG_SETTINGS.map(([name]) => name));
    if (typeof perSessionResets !== "string") resets = perSessionResets;
    trace("settings watched");
  } catch (e) {
    await db.close();
    throw e;
  }

  trace("temporary namespaces installed");
  started = true;
  // synchronous_commit = off: PostgreSQL's WAL writer (walflush.ts).
  let executing = false;
  const walWriter = dataDir.startsWith("memory://") ? null : new WalWriter(
    captured.wasm.exports,
    walWriterDelayMs(settings["wal_writer_delay"]),
    {
      idle: () => !executing && ended === null,
      onFailure: walPanic,
    },
  );
  const endedError = () =>
    new Error(`the engine's backend ended (${ended}); the cluster must be reopened`);
  let extensionsLoaded = false;
  const heapBuffer = memory.buffer;
  const heapFlags: InterruptFlags = flags;
  // Whether Postgres's receive buffer still holds bytes it has not taken
  // (UnfedInput shows it more only when it holds none).
  const remaining = captured.wasm.exports["pq_buffer_remaining_data"];
  if (typeof remaining !== "function") {
    throw new Error("PGlite does not export pq_buffer_remaining_data");
  }
  const received = () => (remaining as () => number)() > 0;
  const interruptTarget = shared && heapBuffer instanceof SharedArrayBuffer
    ? {
      heap: heapBuffer,
      ...heapFlags,
      waitEvent: clock.waitEvent,
      statementTimer: clock.statementTimer,
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
      if (options.reloadSettings !== undefined) {
        applyConfigReload(tools, options.reloadSettings);
        const files = options.reloadFiles ?? {};
        markFileSettings(tools, files);
        resets?.reloaded(options.reloadSettings, files);
      }
      clock.start(seq);
      executing = true;
      // pgts's own SQL (a settings switch) writes no WAL worth a flush.
      if (options.pid !== null) walWriter?.noteExec();
      guard.runAs(options.runAs);
      backends.runAs(options.pid);
      advisory.runAs(options.pid, options.advisoryWait === true);
      if (options.backends !== undefined) {
        const gone = sessions.apply(options.backends);
        if (gone !== null) {
          advisory.dropSessions(gone);
          sequences?.dropSessions(gone);
          prng?.dropSessions(gone);
          tempBuffers?.dropSessions(gone);
          resets?.dropSessions(gone);
          placeholders.dropSessions(gone);
        }
        clientAddresses?.sessionsChanged();
      }
      clientAddresses?.use(options.pid);
      sequences?.runAs(options.pid, options.discardSequences === true);
      prng?.runAs(options.pid);
      tempBuffers?.runAs(options.pid);
      if (options.resetValues !== undefined && options.pid !== null) {
        resets?.define(options.pid, options.resetValues, options.resetAsSuperuser === true);
      }
      resets?.runAs(options.pid);
      if (options.customMade !== undefined && options.pid !== null) {
        placeholders.note(options.pid, options.customMade);
      }
      placeholders.runAs(options.pid);
      backends.setActivity(options.activity ?? null);
      backends.setChannels(options.channels ?? []);
      backends.setNames(options.names ?? []);
      if (temp !== null && options.temp !== undefined) temp.use(options.temp);
      const tempBefore = temp?.carried() ?? null;
      if (options.clockAtMs !== undefined) holdWallClock(options.clockAtMs);
      clock.arm(options.timeoutMs);
      // The end of this exec's answer: a PANIC's text is there if the backend ends.
      const answer: Uint8Array[] = [];
      try {
        // syncToFs: false is safe for the filesystems pgts opens (NODEFS and
        // memory): their syncToFs is a no-op; every write already reached
        // the OS. See engine.ts for the durability note.
        // Whether the answer so far ends at ReadyForQuery 'I' (read before
        // onData, which may hand the chunk's buffer to another thread).
        const at = { idle: false, ready: false };
        const errors = new ErrorWatch();
        const onRawData = (raw: Uint8Array) => {
          const chunk = raw.slice();
          at.ready = endsWithReadyForQuery(chunk);
          at.idle = at.ready && chunk[chunk.length - 1] === IDLE;
          // An error out: a cancel asked of this exec has acted (or is moot).
          if (errors.feed(chunk)) clock.acknowledge(seq);
          answer.push(chunk);
          if (answer.length > 4) answer.shift();
          onData(chunk);
        };
        // A CopyFeedInput is read as PGlite reads a message (copyfeed.ts);
        // any other input ends a COPY it did not feed (UnfedInput).
        const input = bytes instanceof Uint8Array
          ? new UnfedInput(bytes, { inCopy: () => errors.copyIn, received })
          : bytes;
        if (input instanceof CopyFeedInput) {
          input.inCopy = () => errors.copyIn;
          input.copyIns = () => errors.copyIns;
        }
        // A FATAL ends Postgres with exit(), which reaches here as
        // Emscripten's ExitStatus: PostgreSQL's backend would be gone, and
        // PGlite's is left mid-message, answering every later exec with
        // the same FATAL in a loop that never returns (a protocol
        // violation inside a COPY did that). So it ends the backend, as a
        // PANIC does, and the cluster is reopened.
        const exited = (e: unknown) => {
          if ((e as { name?: unknown } | null)?.name === "ExitStatus") {
            ended ??= `FATAL: ${severeText(answer, "FATAL") ?? "exit() during an exec"}`;
          }
          // A backend that ended mid-exec (stackguard.ts) stops it with a throw.
          if (ended === null) throw e;
        };
        await db.execProtocolRawStream(input as unknown as Uint8Array, {
          syncToFs: false,
          onRawData,
        }).catch(exited);
        // An extended batch's unfed COPY: its Sync was read as part of the
        // COPY (PostgreSQL ignores Sync there), so the failed batch is
        // ended here, as the client expects.
        if (ended === null && input instanceof UnfedInput && input.failed && !at.ready) {
          await db.execProtocolRawStream(fe.sync(), { syncToFs: false, onRawData }).catch(exited);
        }
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
          gucs: withCustom(gucs.end(), placeholders.takeSetInExec()),
          temp: tempBefore === null || tempAfter === null ||
              (tempBefore[0] === tempAfter[0] && tempBefore[1] === tempAfter[1])
            ? null
            : { before: tempBefore, after: tempAfter },
        };
      } finally {
        holdWallClock(null);
        temp?.afterExec();
        tempBuffers?.afterExec();
        tempBuffers?.runAs(null);
        trimmer?.afterExec();
        guard.runAs(null);
        placeholders.runAs(null);
        backends.runAs(null);
        advisory.runAs(null);
        executing = false;
        // A cancel must never reach the next exec, which may be another
        // session's (cancelclock.ts).
        clock.end(seq);
      }
    },
    walTicket: () => flusher?.requested ?? 0,
    walDurable: () => flusher?.durable ?? 0,
    // An ended backend cannot shut down (that runs SQL); the next opener
    // recovers from the WAL, as after a crash.
    async close() {
      walWriter?.stop();
      trimmer?.close();
      try {
        if (ended === null) await db.close();
      } finally {
        await flusher?.close();
      }
    },
  };
}

/** The message of the first ErrorResponse of `severity` in `chunks` (backend messages), if any. */
/** An exec's settings change with the custom settings its functions set (customsettings.ts). */
function withCustom(change: GucChange | null, custom: readonly string[] | null): GucChange | null {
  if (custom === null) return change;
  return { reported: change?.reported ?? null, custom };
}

function severeText(chunks: readonly Uint8Array[], severity: "PANIC" | "FATAL"): string | null {
  // A chunk handed to another thread (the Worker posts them) is detached: empty here.
  const buf = concat(chunks.filter((c) => c.byteLength > 0));
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dec = new TextDecoder();
  for (let at = 0; at + 5 <= buf.length;) {
    const end = at + 1 + view.getInt32(at + 1);
    if (end > buf.length) break;
    if (buf[at] === BE.ErrorResponse) {
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
