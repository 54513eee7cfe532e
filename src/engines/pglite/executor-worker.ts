/**
 * The Worker that hosts the PGlite instance for a `worker` executor
 * (workerexecutor.ts). It runs one exec at a time, in arrival order, and streams
 * backend bytes back in chunks of up to CHUNK bytes so a large result never
 * sits whole in two heaps. An exec that came through the channel
 * (channel.ts) and whose answer was not streamed is answered there; others
 * get a `done` message carrying the rest of the answer.
 *
 * It never decides anything about sessions, and a PGlite exception ends only
 * the exec that raised it (reported in `done`), never the worker's loop.
 */

import { answersExpected, endsWithReadyForQuery } from "../../core/protocol/pipeline.ts";
import { registerPgliteAssets } from "./assets.ts";
import { openInstance } from "./instance.ts";
import type { InstanceExecOptions, PGliteInstance } from "./instancetypes.ts";
import type { WorkerReply, WorkerRequest } from "./executor-messages.ts";
import type { BackendSignal } from "./backends.ts";
import type { GucChange } from "./gucwatch.ts";
import type { TempSpan } from "./tempnamespace.ts";
import { ChannelServer, endedIdle, endsInBlock } from "./channel.ts";
import { CANCEL_SEQ } from "./interrupt.ts";
import { adoptPgliteModule, compilePgliteModule } from "./sharedheap.ts";
import { CopyFeedInput } from "./copyfeed.ts";
import { CollectorHint, YoungCollections } from "./gchint.ts";
import { keepToCpus } from "./cpuaffinity.ts";
import { WalRequests } from "./walsyncs.ts";
import { traceClock } from "../../core/starttrace.ts";

/** When this thread's modules were loaded (the start-up tracer's first step here). */
const loadedAt = traceClock();

const CHUNK = 256 * 1024;
const NO_SIGNALS: readonly BackendSignal[] = [];
/** The streamed answers' buffers are this thread's garbage (gchint.ts). */
const hint = new CollectorHint(16);
/** This thread's statements' garbage, collected young (gchint.ts). */
const young = new YoungCollections();

// deno-lint-ignore no-explicit-any -- the Worker global scope differs between runtimes' typings
const scope = globalThis as any as {
  onmessage: ((ev: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(m: WorkerReply, transfer?: Transferable[]): void;
};

let instance: PGliteInstance | null = null;
/** The COPY FROM STDIN feed's shared buffer (copyfeed.ts), from `open`. */
let feed: SharedArrayBuffer | null = null;
/** The exec channel, which also paces streamed answers (channel.ts), from `open`. */
let flow: ChannelServer | null = null;
/** Whether the last exec's answer left its session inside a transaction block (the channel's poll). */
let lastInBlock = false;
/** The cancel cell (interrupt.ts): a cancelled exec is not held back by a slow reader. */
let cancelCell: Int32Array | null = null;
let chain: Promise<void> = Promise.resolve();
/** Resolves with pglite.wasm once the "module" message that follows "open" has come. */
let moduleArrived: ((module: Promise<WebAssembly.Module>) => void) | null = null;

function post(m: WorkerReply, bytes?: Uint8Array | null): void {
  if (bytes != null && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) {
    scope.postMessage(m, [bytes.buffer as ArrayBuffer]);
  } else scope.postMessage(m);
}

/**
 * Runs one exec and answers it: in `slot` of the channel when it came
 * there and its answer fits, else as messages. Resolves whether it ended
 * idle (channel.ts's endedIdle): the next exec, if conditional, may run.
 */
async function run(
  seq: number,
  bytes: Uint8Array,
  options: InstanceExecOptions,
  channel: ChannelServer | null,
  slot: number,
): Promise<boolean> {
  young.note();
  let parts: Uint8Array[] = [];
  let size = 0;
  const take = (): Uint8Array | null => {
    if (size === 0) return null;
    let out: Uint8Array;
    if (parts.length === 1) out = parts[0]!;
    else {
      out = new Uint8Array(size);
      let at = 0;
      for (const p of parts) {
        out.set(p, at);
        at += p.length;
      }
    }
    parts = [];
    size = 0;
    return out;
  };
  // A pipelined input (several Syncs or Queries) sends each answer as soon
  // as its ReadyForQuery is out, as PostgreSQL does: the client may act on
  // it (a cancel of the next query, say) while the rest still runs. A
  // single answer goes back with `done`, in one message.
  const pipelined = answersExpected(bytes) > 1;
  // A COPY fed as the client sends it: each chunk goes at once (the client
  // waits for the CopyInResponse before it sends the data this exec reads).
  const fed = options.feed === true && feed !== null;
  flow?.startStream();
  const cancelled = () => cancelCell !== null && Atomics.load(cancelCell, CANCEL_SEQ) === seq;
  // Once a chunk went as a message, the rest does too (never overtaking it).
  let streamed = false;
  let error: string | null = null;
  let signals: readonly BackendSignal[] = NO_SIGNALS;
  let temp: TempSpan | null = null;
  let gucs: GucChange | null = null;
  try {
    if (instance === null) throw new Error("engine is not open");
    const input = fed ? new CopyFeedInput(feed!, bytes) : bytes;
    ({ signals, temp, gucs } = await instance.exec(seq, input, (chunk) => {
      parts.push(chunk);
      size += chunk.length;
      if (size >= CHUNK || fed || (pipelined && endsWithReadyForQuery(chunk))) {
        const b = take()!;
        streamed = true;
        const n = b.length;
        post({ t: "data", seq, bytes: b, wal: instance!.walTicket() }, b);
        hint.note(n);
        // A client that reads slowly: PostgreSQL waits here, in its write.
        flow?.posted(n, cancelled);
      }
    }, options));
  } catch (e) {
    error = e instanceof Error ? `${e.name}: ${e.message}` : describe(e);
  }
  const wal = instance?.walTicket() ?? 0;
  const end = { error, signals, temp, gucs };
  const idle = !streamed && endedIdle(parts, end);
  lastInBlock = !streamed && endsInBlock(parts);
  if (channel !== null && !streamed && channel.tryReply(slot, seq, parts, { ...end, wal })) {
    return idle;
  }
  const rest = take();
  post({ t: "done", seq, bytes: rest, error, signals, temp, gucs, wal }, rest);
  // The executor reads the channel's slots in turn: this one is answered.
  channel?.byMessage(slot, seq, wal);
  return idle;
}

/**
 * Takes execs from the channel for as long as the worker lives, in turn.
 * A conditional one runs only if the one before it ended idle; the
 * executor sends one only behind another of the channel, never behind a
 * posted exec, so "the one before" is always the last run here.
 */
async function serveChannel(channel: ChannelServer): Promise<void> {
  let idle = false;
  for (;;) {
    const next = channel.next(lastInBlock);
    const r = next instanceof Promise ? await next : next;
    // Run only after an exec that ended idle, and unless the executor withdrew it.
    if (r.conditional && (!idle || !channel.claim(r.slot))) {
      channel.notRun(r.slot, r.seq, instance?.walTicket() ?? 0);
      continue;
    }
    let ended = false;
    chain = chain.then(async () => {
      ended = await run(r.seq, r.bytes, r.options as InstanceExecOptions, channel, r.slot);
    });
    await chain;
    idle = ended;
  }
}

scope.onmessage = (ev: MessageEvent<WorkerRequest>) => {
  const m = ev.data;
  switch (m.t) {
    case "open": {
      // Before PGlite's compile and start, so that what they warm stays here.
      if (m.cpus !== null) keepToCpus(m.cpus);
      // Before the chain: the module may come while an earlier step runs.
      const module = new Promise<WebAssembly.Module>((resolve) => {
        moduleArrived = (m) => resolve(m);
      });
      // The start-up tracer's steps on this thread, sent with "ready".
      const steps: [string, number][] | null = m.trace === true
        ? [["Worker's modules loaded", loadedAt], ["open asked", traceClock()]]
        : null;
      chain = chain.then(async () => {
        try {
          if (m.assets !== null) registerPgliteAssets(m.assets);
          adoptPgliteModule(module);
          feed = m.feed;
          cancelCell = new Int32Array(m.cell);
          instance = await openInstance(m.dataDir, {
            cancelCell: new Int32Array(m.cell),
            sharedHeap: true,
            settings: m.settings,
            settingFiles: m.settingFiles,
            ...(m.image !== null ? { image: m.image } : {}),
            ...(m.database !== null ? { database: m.database } : {}),
            // Group commit: the engine's thread runs the background
            // fdatasyncs, asked through shared memory (walsyncs.ts); only
            // what this thread syncs itself (WAL before data) is posted.
            onWalDurable: (durable) => post({ t: "wal", durable }),
            onWalFailure: (message) => post({ t: "wal-failed", message }),
            walRequests: new WalRequests(m.walRequests),
            ...(steps !== null
              ? { trace: (step: string) => steps.push([step, traceClock()]) }
              : {}),
          });
          post({
            t: "ready",
            tempShared: instance.tempShared,
            requested: instance.walTicket(),
            durable: instance.walDurable(),
            interrupt: instance.interruptTarget,
            trace: steps,
          });
          flow = new ChannelServer(m.channel, m.spinUs);
          void serveChannel(flow);
        } catch (e) {
          post({ t: "failed", message: e instanceof Error ? e.message : String(e) });
        }
      });
      return;
    }
    case "module":
      // null: the starter's compile failed; this realm tries (and reports) its own.
      moduleArrived?.(m.module !== null ? Promise.resolve(m.module) : compilePgliteModule());
      moduleArrived = null;
      return;
    case "exec":
      chain = chain.then(async () => {
        await run(m.seq, m.bytes, m.options, null, -1);
      });
      return;
    case "cpus":
      keepToCpus(m.cpus);
      return;
    case "close":
      chain = chain.then(async () => {
        try {
          await instance?.close();
        } finally {
          instance = null;
          post({ t: "closed" });
        }
      });
      return;
    default: {
      const never: never = m;
      throw new TypeError(`Unknown engine worker request ${JSON.stringify(never)}`);
    }
  }
};

/** A thrown non-Error (Emscripten throws plain objects and numbers) as text. */
function describe(e: unknown): string {
  try {
    return `${String(e)} ${JSON.stringify(e)}`;
  } catch {
    return String(e);
  }
}
