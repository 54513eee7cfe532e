/**
 * Runs a real Postmaster in-process for tests: in-memory sockets, children
 * as tasks (InprocLauncher wrapped to record launches and signals), server
 * log captured from LogTape. Every postmaster started here is stopped by
 * `stopAll()`, which tests call in afterEach, so a failing test leaves
 * nothing running.
 */

import { configure, type LogRecord, reset } from "@logtape/logtape";
import { InprocLauncher } from "../../src/adapters/inproc/launcher.ts";
import { MemoryNetAdapter } from "../../src/adapters/inproc/net.ts";
import type {
  ChildLauncher,
  ChildProcess,
  ChildStartInfo,
  ListenAddress,
  Signal,
} from "../../src/core/adapter.ts";
import type { PMState } from "../../src/core/postmaster/pmstate.ts";
import { Postmaster, type PostmasterHooks } from "../../src/core/postmaster/postmaster.ts";
import type { PostmasterEntries } from "../../src/core/postmaster/pmlaunch.ts";
import { settingsFrom } from "../../src/core/postmaster/settings.ts";
import { TestClient } from "./pm_client.ts";

const HELPERS = new URL("./", import.meta.url);
export const entry = (file: string, name: string) => ({
  module: new URL(file, HELPERS).href,
  export: name,
});

export const BACKEND = entry("test_backend.ts", "testBackendMain");
export const ENGINE = entry("test_children.ts", "testEngineMain");
export const CHECKPOINTER = entry("test_children.ts", "testCheckpointerMain");
export const STARTUP = entry("test_children.ts", "testStartupMain");
export const WORKER = (name: string) => entry("test_children.ts", name);

// ---- server log ------------------------------------------------------------

export interface LogLine {
  readonly severity: string;
  readonly message: string;
  readonly detail?: string;
}

export const serverLog: LogLine[] = [];

export async function captureServerLog(): Promise<void> {
  await configure({
    reset: true,
    sinks: {
      memory: (r: LogRecord) => {
        const p = r.properties as { message?: unknown; severity?: unknown; detail?: unknown };
        serverLog.push({
          severity: String(p.severity ?? r.level),
          message: String(p.message ?? r.message.join("")),
          ...(typeof p.detail === "string" ? { detail: p.detail } : {}),
        });
      },
    },
    loggers: [
      { category: ["pgts"], sinks: ["memory"], lowestLevel: "debug" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
  });
}

export async function releaseServerLog(): Promise<void> {
  await reset();
}

export function logged(message: string | RegExp): LogLine[] {
  return serverLog.filter((l) =>
    typeof message === "string" ? l.message === message : message.test(l.message)
  );
}

// ---- recording launcher ----------------------------------------------------

export interface LaunchRecord {
  readonly kind: string;
  readonly name: string;
  readonly pid: number;
}

export interface SignalRecord {
  readonly kind: string;
  readonly pid: number;
  readonly signal: Signal;
}

/** An InprocLauncher that remembers what it launched and which signals it delivered. */
export class RecordingLauncher implements ChildLauncher {
  readonly name = "recording-inproc";
  readonly inner = new InprocLauncher();
  readonly launches: LaunchRecord[] = [];
  readonly signals: SignalRecord[] = [];
  readonly procs = new Map<number, ChildProcess>();

  async launch(info: ChildStartInfo): Promise<ChildProcess> {
    const proc = await this.inner.launch(info);
    this.launches.push({ kind: info.kind, name: info.name, pid: proc.pid });
    this.procs.set(proc.pid, proc);
    const signals = this.signals;
    return {
      pid: proc.pid,
      exited: proc.exited,
      post: (m) => proc.post(m),
      signal: (sig) => {
        signals.push({ kind: info.kind, pid: proc.pid, signal: sig });
        proc.signal(sig);
      },
      get onMessage() {
        return proc.onMessage;
      },
      set onMessage(h) {
        proc.onMessage = h;
      },
    };
  }

  launched(kind: string): LaunchRecord[] {
    return this.launches.filter((l) => l.kind === kind);
  }

  /** Kills a child from outside, as `kill -9` would. */
  kill(pid: number): void {
    const proc = this.procs.get(pid);
    if (proc === undefined) throw new Error(`no child with pid ${pid}`);
    proc.signal("SIGKILL");
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

// ---- the postmaster --------------------------------------------------------

export interface TestCluster {
  readonly pm: Postmaster;
  readonly net: MemoryNetAdapter;
  readonly launcher: RecordingLauncher;
  readonly settings: Record<string, unknown>;
  readonly address: ListenAddress;
  connect(): TestClient;
  /** Connects and completes the startup handshake. */
  session(): Promise<TestClient>;
}

const running = new Set<TestCluster>();

export const FAST_SETTINGS = {
  max_connections: 10,
  max_worker_processes: 8,
  sigkill_children_after: 0.2,
  authentication_timeout: 2,
  bgworker_restart_intensity: 5,
  bgworker_restart_period: 60,
};

export async function startCluster(
  options: {
    settings?: Record<string, unknown>;
    entries?: Partial<PostmasterEntries>;
    hooks?: PostmasterHooks;
    childParams?: unknown;
    beforeStart?: (pm: Postmaster) => void;
    waitFor?: PMState | null;
  } = {},
): Promise<TestCluster> {
  const settings: Record<string, unknown> = { ...FAST_SETTINGS, ...options.settings };
  const net = new MemoryNetAdapter();
  const launcher = new RecordingLauncher();
  const pm = new Postmaster({
    launcher,
    net,
    settings: settingsFrom(settings),
    listen: [{ family: "tcp", host: "127.0.0.1", port: 0 }],
    entries: {
      backend: BACKEND,
      engine: ENGINE,
      checkpointer: CHECKPOINTER,
      startup: STARTUP,
      ...options.entries,
    },
    childParams: options.childParams ?? {},
    ...(options.hooks === undefined ? {} : { hooks: options.hooks }),
  });
  options.beforeStart?.(pm);
  await pm.start();
  const address = pm.addresses[0]!;
  const cluster: TestCluster = {
    pm,
    net,
    launcher,
    settings,
    address,
    connect: () => new TestClient(net.connect(address)),
    session: async () => {
      const c = new TestClient(net.connect(address));
      const reply = await c.startup();
      if (reply.at(-1)?.type !== "Z") throw new Error("session startup failed");
      return c;
    },
  };
  running.add(cluster);
  const target = options.waitFor === undefined ? "PM_RUN" : options.waitFor;
  if (target !== null) await waitForState(pm, target);
  return cluster;
}

export function waitForState(pm: Postmaster, state: PMState, timeoutMs = 3000): Promise<void> {
  if (pm.pmState === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      pm.removeEventListener("pmstate", onState);
      reject(new Error(`timed out waiting for ${state}; still in ${pm.pmState}`));
    }, timeoutMs);
    const onState = (e: Event) => {
      if ((e as CustomEvent<{ to: PMState }>).detail.to !== state) return;
      clearTimeout(timer);
      pm.removeEventListener("pmstate", onState);
      resolve();
    };
    pm.addEventListener("pmstate", onState);
  });
}

export async function waitUntil(
  cond: () => boolean,
  what: string,
  timeoutMs = 3000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export { withTimeout } from "./pgts.ts";

/** Stops every cluster a test started: immediate shutdown, then the launcher's children. */
export async function stopAll(): Promise<void> {
  for (const c of running) {
    running.delete(c);
    c.pm.signal("SIGQUIT");
    await Promise.race([c.pm.exited, new Promise((r) => setTimeout(r, 2000))]);
    await c.launcher.close();
  }
  serverLog.length = 0;
}
