/**
 * The pool of backend processes started ahead (`backend_pool_size`), shared
 * by the Bun and Deno subprocess launchers; each gives it the one thing that
 * differs, how a pooled process is started and spoken to (`PoolSpawn`).
 *
 * A process start is the largest part of a new connection's cost under a
 * subprocess launcher (a Deno backend took 120-150 ms from connect to its
 * first answer, nearly all of it loading pgts's modules): clients that
 * connect and at once expect to hear from another session (postgres.js's
 * NOTIFY from a fresh connection 50 ms after a LISTEN) missed it. Here
 * `size` processes are started ahead, already loading the backend's module,
 * and a client is sent to an idle one with the start envelope. A run that
 * ends cleanly (exit 0: the client said Terminate or went away) reports that
 * exit, which is what the postmaster sees of it, and its process comes back;
 * anything else (FATAL, crash, signal) ends the process as before. At most
 * `max` processes are kept idle; idle ones beyond `size` end after
 * POOL_TRIM_MS without a client, so that after a flood of connections the
 * process count and memory come back to where they were.
 *
 * It never owns a run's client: the socket is the child's once sent.
 */

import type { ChildExit, ChildProcess, ChildStartInfo, Signal } from "../../core/adapter.ts";
import { ChildHandle } from "./childhandle.ts";
import type { StartPayload, ToChild, ToParent } from "./envelope.ts";

/** How long idle pooled processes beyond the pool's size are kept after a burst. */
const POOL_TRIM_MS = 2000;

/** A pooled process as its launcher drives it. */
export interface PoolProcess {
  readonly pid: number;
  /** How it ended, once it has. */
  readonly exited: Promise<ChildExit>;
  /** Whether it has not exited yet. */
  running(): boolean;
  /** An OS signal (quietly nothing if it is gone). */
  kill(sig: Signal): void;
  /** A message, dropped quietly if the channel has closed (its exit is reported anyway). */
  send(message: ToChild): void;
  /** The start envelope with the client's socket; `release` drops our copy once it may go. */
  sendWithSocket(message: ToChild, socket: unknown, release: () => void): void;
}

/**
 * Starts a pooled process that loads `module` while it waits; every envelope
 * it sends goes to `onMessage`.
 */
export type PoolSpawn = (module: string, onMessage: (message: ToParent) => void) => PoolProcess;

export interface BackendPoolOptions {
  /** Idle processes kept ready. */
  readonly size: number;
  /** Idle processes kept after their client left; default 2 × size. */
  readonly max?: number;
  /**
   * The backends' module, when known ahead: the pool is then filled at the
   * launcher's first launch (the postmaster's start), not at the first
   * client's, which would otherwise wait behind `size` process starts.
   */
  readonly module?: string;
}

/** A pooled process and the run it serves now, if any. */
interface Pooled {
  readonly proc: PoolProcess;
  /** The module its backends run, loaded ahead. */
  readonly module: string;
  run: { handle: ChildHandle; exit: (e: ChildExit) => void } | null;
}

/**
 * Ends a pooled process that serves no run. SIGKILL, not SIGTERM: a process
 * whose run has just reported its exit may still have that run's SIGTERM
 * handler installed (it is removed once the exit envelope is on the wire),
 * and a SIGTERM caught there was lost, leaving a process nobody would use
 * again. An idle pooled process holds no client and no state; the
 * postmaster has already seen its run end.
 */
function endIdle(p: Pooled): void {
  p.proc.kill("SIGKILL");
}

export class BackendPool {
  readonly #spawn: PoolSpawn;
  readonly #size: number;
  readonly #max: number;
  #idle: Pooled[] = [];
  #primeModule: string | undefined;
  #closed = false;
  #trimTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(options: BackendPoolOptions, spawn: PoolSpawn) {
    this.#spawn = spawn;
    this.#size = Math.max(0, options.size);
    this.#max = Math.max(this.#size, options.max ?? 2 * this.#size);
    this.#primeModule = options.module;
  }

  /** Whether the pool starts any process at all. */
  get enabled(): boolean {
    return this.#size > 0;
  }

  /** Fills the pool with the backends' module, once, when it was given ahead. */
  prime(): void {
    if (this.#primeModule === undefined || !this.enabled) return;
    this.#fill(this.#primeModule);
    this.#primeModule = undefined;
  }

  /**
   * Starts `info`'s run on an idle process, its client's `socket` sent with
   * the start envelope; null when none is idle (the launcher starts one of
   * its own). Refills the pool either way.
   */
  take(
    info: ChildStartInfo,
    client: { socket: unknown; release: () => void },
  ): ChildProcess | null {
    if (!this.enabled || info.client === undefined) return null;
    const pooled = this.#takeIdle(info.entry.module);
    this.#fill(info.entry.module);
    return pooled === null ? null : this.#start(pooled, info, client);
  }

  /** Ends the idle processes; running children stay the postmaster's. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#trimTimer !== null) clearTimeout(this.#trimTimer);
    const idle = this.#idle.splice(0);
    for (const p of idle) endIdle(p);
    await Promise.all(idle.map((p) => p.proc.exited));
  }

  /**
   * The idle process that served last: a process whose code the JIT has
   * already compiled starts a session several times faster than a cold one,
   * so the pool is used as a stack. New processes go to the bottom.
   */
  #takeIdle(module: string): Pooled | null {
    const i = this.#idle.findLastIndex((p) => p.module === module && p.proc.running());
    if (i < 0) return null;
    return this.#idle.splice(i, 1)[0]!;
  }

  /**
   * Ends idle processes beyond `size` once the pool has had that many idle
   * for POOL_TRIM_MS: the coldest first (the bottom of the stack), keeping
   * the ones whose code is compiled.
   */
  #scheduleTrim(): void {
    if (this.#trimTimer !== null || this.#closed) return;
    this.#trimTimer = setTimeout(() => {
      this.#trimTimer = null;
      if (this.#closed) return;
      const extra = this.#idle.length - this.#size;
      if (extra <= 0) return;
      for (const p of this.#idle.splice(0, extra)) endIdle(p);
    }, POOL_TRIM_MS);
    (this.#trimTimer as { unref?: () => void }).unref?.();
  }

  /** Starts pooled processes until `size` are idle. */
  #fill(module: string): void {
    while (!this.#closed && this.#idle.length < this.#size) this.#spawnPooled(module);
  }

  #spawnPooled(module: string): void {
    let pooled: Pooled | null = null;
    const proc = this.#spawn(module, (message) => {
      if (pooled === null) return;
      const run = pooled.run;
      if (message.t === "msg") run?.handle.receive(message.m);
      else if (message.t === "up") run?.handle.up();
      else if (message.t === "exit" && run !== null && message.code === 0) {
        // The run is over; the process stays, and goes back to the pool.
        pooled.run = null;
        run.exit({ code: 0, signal: null });
        if (!this.#closed && this.#idle.length < this.#max) {
          this.#idle.push(pooled);
          if (this.#idle.length > this.#size) this.#scheduleTrim();
        } else endIdle(pooled);
      }
    });
    const p: Pooled = { proc, module, run: null };
    pooled = p;
    // Counted as idle at once: it loads its module while it waits, and a
    // client sent before it is ready waits in the IPC channel.
    this.#idle.unshift(p);
    void proc.exited.then((how) => {
      const i = this.#idle.indexOf(p);
      if (i >= 0) this.#idle.splice(i, 1);
      const run = p.run;
      p.run = null;
      run?.exit(how);
    });
  }

  #start(
    pooled: Pooled,
    info: ChildStartInfo,
    client: { socket: unknown; release: () => void },
  ): ChildProcess {
    const proc = pooled.proc;
    let exit: (e: ChildExit) => void = () => {};
    const exited = new Promise<ChildExit>((resolve) => (exit = resolve));
    let over = false;
    void exited.then(() => (over = true));
    const handle = new ChildHandle(proc.pid, exited, {
      signal(sig: Signal) {
        // A run that is over no longer owns the process.
        if (!over && proc.running()) proc.kill(sig);
      },
      post(message) {
        if (!over && proc.running()) proc.send({ t: "msg", m: message });
      },
    });
    pooled.run = { handle, exit };
    const start: StartPayload = {
      pid: proc.pid,
      kind: info.kind,
      name: info.name,
      entry: info.entry,
      params: info.params,
      client: { via: "handle", remote: info.client!.remote },
    };
    proc.sendWithSocket({ t: "start", start }, client.socket, client.release);
    return handle;
  }
}
