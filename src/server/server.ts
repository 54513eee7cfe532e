/**
 * `runServer`: PostmasterMain for a pgts data directory. Builds the
 * postmaster from what `pgts start` prepared (settings, lock file), picks the
 * adapter that runs the children, opens the listen sockets, wires OS signals
 * to the postmaster's queue. It
 * resolves with the postmaster's exit code; it never exits the process.
 */

import { AsyncLocalStorage } from "node:async_hooks";
import { readFileSync } from "node:fs";
import { lookup } from "node:dns/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseHba } from "../core/auth/mod.ts";
import { parseIp } from "../core/auth/inet.ts";
import type { DataDirectory, DataDirLock } from "../core/datadir.ts";
import { ereport, ERRCODE, PgError } from "../core/elog.ts";
import type { Guc } from "../core/guc/guc.ts";
import { type LogLinePrefix, setLogPrefixLookup } from "../core/log.ts";
import { parsePreloadLibraries } from "../core/guc/preload.ts";
import { splitList } from "../core/guc/values.ts";
import {
  type BackgroundWorkerSpec,
  BGW_NEVER_RESTART,
  BGWORKER_SHMEM_ACCESS,
} from "../core/postmaster/bgworker.ts";
import type { ChildEntry, ChildLauncher, ListenAddress, NetAdapter } from "../core/adapter.ts";
import { Postmaster } from "../core/postmaster/postmaster.ts";
import type { PostmasterSignal } from "../core/postmaster/pmstate.ts";
import { InprocLauncher } from "../adapters/inproc/mod.ts";
import { currentRuntime } from "../adapters/runtime.ts";
import {
  checkEngineSetting,
  isUpstreamUrl,
  poolModesOf,
  poolsTransactions,
} from "../engines/upstream/mod.ts";
import * as childMains from "./children.ts";
import { childEntry, resolveMain } from "./mains.ts";
import type { EngineAddress, ServerParams } from "./params.ts";
import { loadSslConfig, reloadSslConfig, warnHostsslWithoutSsl } from "./ssl.ts";

/**
 * How children run. "inproc", the default: backends are tasks in the
 * postmaster's process and PGlite has a Worker thread of its own (a running
 * statement never holds the thread that accepts and cancels). "subprocess":
 * a process per backend (Bun's, or forked Deno's). "worker": a Web Worker
 * per child.
 */
export const ADAPTERS = ["inproc", "subprocess", "worker"] as const;
export type AdapterName = (typeof ADAPTERS)[number];
export const DEFAULT_ADAPTER: AdapterName = "inproc";

/** The adapter `--adapter NAME` names ("bun" is subprocess's older name), or undefined. */
export function adapterNamed(name: string): AdapterName | undefined {
  if (name === "bun") return "subprocess";
  return (ADAPTERS as readonly string[]).includes(name) ? name as AdapterName : undefined;
}

export interface RunServerOptions {
  readonly dataDir: DataDirectory;
  readonly guc: Guc;
  readonly lock: DataDirLock;
  readonly adapter?: AdapterName;
}

const LOG = { category: "postmaster" } as const;

/** A free TCP port on `host`, for `port = 0` (the Unix socket's name needs the number). */
function pickPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen({ host, port: 0 }, () => {
      const a = s.address();
      const port = a !== null && typeof a === "object" ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/**
 * The addresses listen_addresses names, as PostgreSQL's StreamServerPort
 * takes them from getaddrinfo: "*" is every IPv4 and every IPv6 address,
 * a host name (localhost among them) every address it resolves to. A name
 * that does not resolve is logged and skipped, as there.
 */
async function listenHosts(guc: Guc, port: number): Promise<string[]> {
  const hosts: string[] = [];
  for (const h of splitList(guc.getString("listen_addresses")) ?? []) {
    if (h === "") continue;
    if (h === "*") hosts.push("0.0.0.0", "::");
    else if (parseIp(h) !== null) hosts.push(h);
    else {
      try {
        for (const a of await lookup(h, { all: true })) hosts.push(a.address);
      } catch (e) {
        const code = (e as { code?: unknown } | null)?.code;
        ereport(
          "LOG",
          `could not translate host name "${h}", service "${port}" to address: ${
            code === "ENOTFOUND"
              ? "Name or service not known"
              : e instanceof Error
              ? e.message
              : String(e)
          }`,
          LOG,
        );
        ereport("WARNING", `could not create listen socket for "${h}"`, LOG);
      }
    }
  }
  return [...new Set(hosts)];
}

async function runtimeAdapters(
  adapter: AdapterName,
  guc: Guc,
): Promise<{ launcher: ChildLauncher; net: NetAdapter; engine: "unix" | "inproc" }> {
  if (adapter === "inproc") {
    // No socket is handed to another process here, so under Bun the
    // listeners are Bun's own: node:net's stream machinery on every write
    // is the largest cost of a statement served in-process.
    const net = await currentRuntime().inRealmNet();
    // pgts's own mains come from the one table (mains.ts), not by
    // import(URL): inside the compiled binary there is no file to import.
    // Each backend logs as itself (%p is its pg_backend_pid()), the way a
    // process of its own would: its code runs inside its log prefix.
    const logContext = new AsyncLocalStorage<LogLinePrefix>();
    setLogPrefixLookup(() => logContext.getStore());
    return {
      launcher: new InprocLauncher({ resolve: resolveMain, logContext }),
      net,
      engine: "inproc",
    };
  }
  const { launcher, net } = await currentRuntime().adapter({
    kind: adapter === "worker" ? "worker" : "subprocess",
    backendPool: guc.getInt("backend_pool_size"),
    backendModule: childEntry("backendMain").module,
  });
  return { launcher, net, engine: "unix" };
}

/**
 * The workers named by shared_preload_libraries, as RegisterBackgroundWorker
 * specs: each may touch shared state (a crash is everyone's crash), starts
 * once recovery has finished and is restarted after
 * bgworker_restart_interval. A worker is named after its export, or after
 * its module when the export is the default `main`.
 *
 * As PostgreSQL's postmaster loads its preload libraries before it listens,
 * each module is imported here and its export checked: a name that does not
 * load is FATAL at start, not a worker that dies at every restart of the
 * cluster (a crash cycle). A plain word such as `pg_stat_statements`, from a
 * postgresql.conf written for PostgreSQL, gets a hint that says why.
 */
export async function preloadedWorkers(
  guc: Guc,
  dataDir: string,
): Promise<BackgroundWorkerSpec[]> {
  const interval = guc.getInt("bgworker_restart_interval");
  const entries = parsePreloadLibraries(guc.getString("shared_preload_libraries"), { dataDir });
  const specs: BackgroundWorkerSpec[] = [];
  for (const entry of entries) {
    await checkPreloadLibrary(entry);
    const file = entry.module.slice(entry.module.lastIndexOf("/") + 1).replace(/\.[^.]*$/, "");
    specs.push({
      name: entry.export === "main" ? file : entry.export,
      entry,
      flags: BGWORKER_SHMEM_ACCESS,
      startTime: "BgWorkerStart_RecoveryFinished",
      restartTime: interval < 0 ? BGW_NEVER_RESTART : interval,
    });
  }
  return specs;
}

/** Imports one shared_preload_libraries module; throws a FATAL PgError when it cannot serve. */
async function checkPreloadLibrary(entry: ChildEntry): Promise<void> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(entry.module)) as Record<string, unknown>;
  } catch (e) {
    const bare = /^[A-Za-z0-9_]+$/.test(entry.module);
    throw new PgError(
      ERRCODE.UNDEFINED_FILE,
      `could not load library "${entry.module}": ${e instanceof Error ? e.message : String(e)}`,
      {
        severity: "FATAL",
        ...(bare
          ? {
            hint:
              "pgts's shared_preload_libraries names JavaScript modules that export a background worker (MODULE[#EXPORT]); PostgreSQL's C libraries cannot be loaded.",
          }
          : {}),
      },
    );
  }
  if (typeof mod[entry.export] !== "function") {
    throw new PgError(
      ERRCODE.UNDEFINED_FUNCTION,
      `could not find function "${entry.export}" in file "${entry.module}"`,
      { severity: "FATAL" },
    );
  }
}

/**
 * PostmasterMain's checks of parameters against each other, FATAL at
 * start. The engine would start with them and then fall short (PGlite
 * makes no such check).
 */
export function checkSettingCombinations(guc: Guc): void {
  const superuser = guc.getInt("superuser_reserved_connections");
  const reserved = guc.getInt("reserved_connections");
  const max = guc.getInt("max_connections");
  if (superuser + reserved >= max) {
    throw new PgError(
      ERRCODE.INVALID_PARAMETER_VALUE,
      `superuser_reserved_connections (${superuser}) plus reserved_connections (${reserved})` +
        ` must be less than max_connections (${max})`,
      { severity: "FATAL" },
    );
  }
  if (guc.getString("archive_mode") !== "off" && guc.getString("wal_level") === "minimal") {
    throw new PgError(
      ERRCODE.INVALID_PARAMETER_VALUE,
      'WAL archival cannot be enabled when "wal_level" is "minimal"',
      { severity: "FATAL" },
    );
  }
}

export async function runServer(options: RunServerOptions): Promise<number> {
  const { dataDir, guc, lock } = options;
  const adapterName = options.adapter ?? DEFAULT_ADAPTER;
  // An engine child in this realm needs pglite.wasm compiled (a few tenths
  // of a second): begun now, it compiles while the listeners open and the
  // child and its Worker start, and that Worker takes it (workerexecutor.ts).
  // Where the compile holds this thread, it waits for the Worker's creation
  // instead (Runtime.compileEngineEarly).
  if (
    currentRuntime().compileEngineEarly &&
    adapterName === "inproc" && !isUpstreamUrl(guc.getString("engine")) &&
    guc.getString("engine_placement") === "worker"
  ) {
    void import("../engines/pglite/sharedheap.ts").then((m) => m.sharedPgliteModule()).catch(
      () => {}, // the engine child compiles again and reports the failure
    );
  }
  checkSettingCombinations(guc);
  // Before anything listens, as PostgreSQL loads its preload libraries.
  const workers = await preloadedWorkers(guc, dataDir.path);
  const hbaFile = join(dataDir.path, "pg_hba.conf");
  const hbaText = readFileSync(hbaFile, "utf8");
  // Refuse to start on a broken file.
  warnHostsslWithoutSsl(parseHba(hbaText, { fileName: hbaFile }), guc);
  // As PostgreSQL, refuse to start when ssl is on and its files do not load.
  const ssl = await loadSslConfig(guc, dataDir.path, { isServerStart: true });

  let port = guc.getInt("port");
  if (port === 0) {
    // On the first address named, or the loopback's for a host name.
    const first = splitList(guc.getString("listen_addresses"))?.find((h) => h !== "") ?? "";
    port = await pickPort(
      first === "*" ? "0.0.0.0" : parseIp(first) !== null ? first : "127.0.0.1",
    );
    // What SHOW port answers, in pgts and in the engine.
    guc.set("port", String(port), { source: "override" });
  }
  const hosts = await listenHosts(guc, port);
  const keepAliveIdleMs = guc.getInt("tcp_keepalives_idle") * 1000;
  const listen: ListenAddress[] = hosts.map((host) => ({
    family: "tcp",
    host,
    port,
    ...(keepAliveIdleMs > 0 ? { keepAliveIdleMs } : {}),
  }));
  const socketDirs = splitList(guc.getString("unix_socket_directories")) ?? [];
  // PostgreSQL's Setup_AF_UNIX: the group, then the mode (0777 unless set).
  const socketAccess = {
    permissions: guc.getInt("unix_socket_permissions"),
    group: guc.getString("unix_socket_group"),
  };
  for (const dir of socketDirs) {
    if (dir === "") continue;
    listen.push({ family: "unix", path: join(dir, `.s.PGSQL.${port}`), ...socketAccess });
  }

  // engine = 'postgres://...': in session mode backends dial the upstream
  // themselves and there is no engine child.
  const engineSetting = guc.getString("engine");
  const upstream = checkEngineSetting(engineSetting);
  const { launcher, net, engine: engineKind } = await runtimeAdapters(adapterName, guc);
  // In transaction mode the upstream connections are shared: the engine
  // child owns the pool, and backends reach it as they reach PGlite. When
  // only some databases or users are pooled per transaction, the pool
  // serves the others too, in session mode (pgbouncer's).
  const direct = upstream && !poolsTransactions(poolModesOf(guc));
  const engineAddress: EngineAddress = direct
    ? { kind: "upstream", url: engineSetting }
    : engineKind === "inproc"
    ? { kind: "inproc", id: crypto.randomUUID() }
    : { kind: "unix", path: join(tmpdir(), `.s.PGTS.engine.${process.pid}`) };
  const params: ServerParams = {
    dataDir: dataDir.path,
    settings: guc.snapshot(),
    commandLine: guc.names().filter((n) => {
      const source = guc.describe(n).source;
      return source === "argv" || source === "override";
    }),
    settingFiles: guc.settingFiles(guc.names()),
    hba: hbaText,
    hbaFile,
    engine: engineAddress,
    ssl,
  };
  childMains.markPostmasterRealm();

  const pm = new Postmaster({
    launcher,
    net,
    listen,
    settings: { get: (name) => guc.get(name) },
    entries: {
      backend: childEntry("backendMain"),
      ...(direct ? {} : { engine: childEntry("engineMain") }),
      checkpointer: childEntry("checkpointerMain"),
      // Only where PGlite has a pg_wal to archive.
      ...(upstream ? {} : { archiver: childEntry("archiverMain") }),
    },
    childParams: params,
    hooks: {
      reloadConfig: async () => {
        guc.reload();
        params.settings = guc.snapshot();
        params.settingFiles = guc.settingFiles(guc.names());
        params.ssl = await reloadSslConfig(guc, dataDir.path, params.ssl);
        try {
          const text = readFileSync(hbaFile, "utf8");
          warnHostsslWithoutSsl(parseHba(text, { fileName: hbaFile }), guc);
          params.hba = text;
        } catch (e) {
          ereport("LOG", `${hbaFile} was not reloaded`, {
            ...LOG,
            detail: e instanceof Error ? e.message : String(e),
          });
        }
      },
      setStatus: (status) => lock.update({ status }),
      sslServer: () => params.ssl === null ? null : childMains.sslServerOf(params.ssl),
    },
  });

  for (const worker of workers) pm.registerBackgroundWorker(worker);

  const signals: PostmasterSignal[] = ["SIGHUP", "SIGTERM", "SIGINT", "SIGQUIT"];
  const handlers = signals.map((sig) => {
    const h = () => pm.signal(sig);
    process.on(sig, h);
    return [sig, h] as const;
  });
  // The port (picked here when 0) goes into postmaster.pid before the
  // server can be ready, so whoever waits for "ready" can read it.
  const unix = listen.find((a) => a.family === "unix");
  lock.update({
    port,
    ...(unix !== undefined ? { socketDir: unix.path.slice(0, unix.path.lastIndexOf("/")) } : {}),
    ...(hosts[0] !== undefined ? { listenAddress: hosts[0] } : {}),
  });
  try {
    await pm.start();
    return await pm.exited;
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
    await launcher.close().catch(() => {});
  }
}
