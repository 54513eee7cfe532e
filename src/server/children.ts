/**
 * The child mains of a pgts server, as the postmaster's entries name them:
 * the backend (PostgresMain on an engine reached through the engine child),
 * the engine child (the single owner of the PGlite data directory, the
 * analogue of PostgreSQL's shared memory) and the checkpointer.
 *
 * This is runtime glue, not core: it picks how a backend reaches the engine
 * (an object in the same realm under the in-process adapter, a Unix socket
 * otherwise) and opens the engine on disk. Each main runs the same way
 * under every adapter, and under both `pgts start` and `serve-http`: a
 * server in this realm may register how its engine opens
 * (`registerEngineOpener`; the HTTP front end's memory:// or upstream
 * engines), and the engine child uses that instead of the data directory.
 *
 * Nothing here imports node: modules up front (they are loaded where a
 * socket or file is first needed), so that a bundle for a host without
 * them, an edge function serving HTTP, can carry these mains.
 */

import { type HbaLine, parseHba } from "../core/auth/mod.ts";
import { postgresMain } from "../core/backend/postgres.ts";
import type { StartupSettings } from "../core/backend/startup.ts";
import type { SslConfig, SslServer } from "../core/backend/secure.ts";
import { ereport, ERRCODE, PgError } from "../core/elog.ts";
import { connectRemoteEngine, serveEngineConnection } from "../core/engine/remote.ts";
import type { Engine } from "../core/engine/types.ts";
import { Guc, type GucSnapshot } from "../core/guc/guc.ts";
import { configureLogging } from "../core/log.ts";
import type { ChildEnv, ChildMain, Connection, Listener } from "../core/adapter.ts";
import { PostmasterLink } from "../core/postmaster/pmsignal.ts";
import { currentRuntime } from "../adapters/runtime.ts";
import { withAdminConsole } from "../http/console.ts";
import { poolConsole } from "../engines/upstream/console.ts";
import {
  isUpstreamUrl,
  poolModesOf,
  poolSettingsOf,
  type UpstreamAddress,
  UpstreamEngine,
  UpstreamPool,
  type UpstreamStartTls,
} from "../engines/upstream/mod.ts";
// Types only: a backend importing this module must not load PGlite's code.
import type { EngineReload } from "../engines/pglite/engineoptions.ts";
import type { AuthFileLookup } from "../engines/upstream/auth-file.ts";
import { type ServerParams, serverParams } from "./params.ts";

/** Engines opened by engine children running in this realm, by id. */
const inprocEngines = new Map<string, Engine>();

/** How the engine of an in-realm server opens, by the id of its engine address. */
const engineOpeners = new Map<string, () => Promise<Engine>>();

/**
 * Makes the engine child of the server whose engine address is
 * `{ kind: "inproc", id }` open its engine with `open` rather than from the
 * data directory and settings. Returns a function that forgets it.
 */
export function registerEngineOpener(id: string, open: () => Promise<Engine>): () => void {
  engineOpeners.set(id, open);
  return () => engineOpeners.delete(id);
}

/**
 * The engine an in-realm engine child serves, for backends and HTTP runs;
 * 57P03 while there is none (starting, or reopening after a crash).
 */
export function inprocEngine(id: string): Engine {
  const engine = inprocEngines.get(id);
  if (engine === undefined) {
    throw new PgError(
      ERRCODE.CANNOT_CONNECT_NOW,
      "the database system is not yet accepting connections",
      { severity: "FATAL" },
    );
  }
  return engine;
}

/** A path below a directory (POSIX: node:path is not loaded for this). */
const joinPath = (dir: string, name: string) => dir.endsWith("/") ? dir + name : `${dir}/${name}`;

/** True once a postmaster runs in this realm: children here share its logging. */
let postmasterRealm = false;
export function markPostmasterRealm(): void {
  postmasterRealm = true;
}

/**
 * Settings rebuilt per snapshot, shared by the children of one realm (the
 * in-process adapter's, which all see the postmaster's snapshot until a
 * reload replaces it). Children only read them.
 */
const gucs = new WeakMap<GucSnapshot, Guc>();

async function setUpChild(env: ChildEnv): Promise<{ params: ServerParams; guc: Guc }> {
  const params = serverParams(env);
  let guc = gucs.get(params.settings);
  if (guc === undefined) {
    guc = Guc.fromSnapshot(params.settings);
    gucs.set(params.settings, guc);
  }
  if (!postmasterRealm) {
    const { stderrSink } = await import("../adapters/node/logfiles.ts");
    configureLogging(guc, {
      sink: stderrSink,
      process: { pid: env.pid, backendType: env.name, startTime: Date.now() },
    });
  }
  return { params, guc };
}

/** Dials an upstream PostgreSQL with the runtime's own sockets (Runtime.dialer). */
export async function connectUpstream(address: UpstreamAddress): Promise<Connection> {
  const dial = await currentRuntime().dialer();
  return address.family === "tcp"
    ? dial.connectTcp(address.host, address.port)
    : dial.connectUnix(address.path);
}

/** TLS to an upstream (sslmode): node:tls, loaded by the first connection that asks. */
export const startTlsUpstream: UpstreamStartTls = async (raw, options) =>
  (await import("../adapters/node/tls.ts")).openSslClient(raw, options);

/** upstream_login, read from the settings snapshot without building a Guc per backend. */
function upstreamLoginOf(params: ServerParams): "client" | "url" {
  return params.settings["upstream_login"] === "url" ? "url" : "client";
}

/**
 * auth_file's entries, read by the node:fs reader, loaded on first use (a
 * backend whose server has no auth_file never loads it); `setting` gives
 * the parameter now, so that a reload applies.
 */
function authFileOf(setting: () => string, dataDir: string): AuthFileLookup {
  let reader: Promise<AuthFileLookup> | null = null;
  return async (user) => {
    if (setting() === "") return null;
    reader ??= import("../adapters/node/auth-file-reader.ts").then((m) =>
      m.authFileReader(setting, dataDir)
    );
    return await (await reader)(user);
  };
}

function engineFor(params: ServerParams): Engine {
  const address = params.engine;
  // An upstream has no single owner of shared state: the backend holds its
  // upstream session itself, with no engine-child hop.
  if (address.kind === "upstream") {
    return new UpstreamEngine(address.url, {
      connect: connectUpstream,
      startTls: startTlsUpstream,
      loginAs: upstreamLoginOf(params),
      authFile: authFileOf(() => params.settings["auth_file"] ?? "", params.dataDir),
    });
  }
  if (address.kind === "unix") {
    // The runtime's own sockets (Runtime.dialer): the engine link carries
    // every statement.
    return connectRemoteEngine(async () =>
      (await currentRuntime().dialer()).connectUnix(address.path)
    );
  }
  const engine = inprocEngine(address.id);
  // The engine is shared by every backend in this realm: a backend's close
  // must not close it.
  return {
    lookupRole: (name) => engine.lookupRole(name),
    startSession: (startup) => engine.startSession(startup),
    close: () => Promise.resolve(),
  };
}

/** The last pg_hba.conf parsed in this realm: in-process backends share it until a reload changes the text. */
let hbaParsed: { text: string; fileName: string; lines: HbaLine[] } | null = null;

function hbaOf(params: ServerParams): HbaLine[] {
  if (
    hbaParsed === null || hbaParsed.text !== params.hba || hbaParsed.fileName !== params.hbaFile
  ) {
    const lines = parseHba(params.hba, { fileName: params.hbaFile });
    hbaParsed = { text: params.hba, fileName: params.hbaFile, lines };
  }
  return hbaParsed.lines;
}

/** A backend's startup settings per settings snapshot (a reload makes a new Guc). */
const startupSettingsOf = new WeakMap<Guc, StartupSettings>();

export const backendMain: ChildMain = async (env) => {
  const { params, guc } = await setUpChild(env);
  env.onSignal("SIGHUP", () => {});
  let settings = startupSettingsOf.get(guc);
  if (settings === undefined) {
    settings = {
      authenticationTimeoutMs: guc.getMs("authentication_timeout"),
      superuserReservedConnections: guc.getInt("superuser_reserved_connections"),
      logConnections: guc.getBool("log_connections"),
      logDisconnections: guc.getBool("log_disconnections"),
    };
    startupSettingsOf.set(guc, settings);
  }
  return await postgresMain(env, {
    engine: engineFor(params),
    hba: hbaOf(params),
    settings,
    ssl: params.ssl === null ? null : sslServerOf(params.ssl),
  });
};

/** SSL servers per configuration: the backends of a realm share one secure context until a reload. */
const sslServers = new WeakMap<SslConfig, SslServer>();

/**
 * The SSL server of a configuration, for a backend (and for the
 * postmaster's dead-ends). node:tls is imported only when a client asks for
 * SSL: a backend that never sees an SSLRequest does not pay for it.
 */
export function sslServerOf(config: SslConfig): SslServer {
  let server = sslServers.get(config);
  if (server === undefined) {
    let opened: SslServer | null = null;
    server = {
      verifiesClients: config.ca !== null,
      async accept(raw, early) {
        opened ??= (await import("../adapters/node/tls.ts")).openSslServer(config);
        return opened.accept(raw, early);
      },
    };
    sslServers.set(config, server);
  }
  return server;
}

/**
 * The engine child: opens the data directory (PGlite replays its WAL here,
 * which is the recovery after a crash), serves backends, and closes the
 * engine cleanly — a checkpoint — only when the postmaster says the
 * backends are gone (SIGUSR2). SIGQUIT leaves at once, as PostgreSQL's
 * children do: the next start recovers.
 */
export const engineMain: ChildMain = async (env) => {
  const { params, guc } = await setUpChild(env);
  const link = new PostmasterLink(env);
  let stop: (code: number) => void = () => {};
  const stopped = new Promise<number>((resolve) => (stop = resolve));
  env.onSignal("SIGUSR2", () => stop(0));
  env.onSignal("SIGQUIT", () => stop(2));
  env.onSignal("SIGTERM", () => {});
  env.onSignal("SIGINT", () => {});
  env.onSignal("SIGHUP", () => {});

  if (params.engine.kind === "upstream") {
    throw new TypeError("An upstream engine in session mode has no engine child");
  }
  const engineSetting = guc.getString("engine");
  const opener = params.engine.kind === "inproc" ? engineOpeners.get(params.engine.id) : undefined;
  // Only the engine child loads PGlite's code: a backend importing this
  // module must not pay for it on every connection (a third of a second).
  const engine: Engine = opener !== undefined
    ? await opener()
    : isUpstreamUrl(engineSetting)
    ? openPool(engineSetting, guc, env)
    : await openPglite(params, guc, stop, () => link.sendSignal("reload-config"));
  // A reload reaches the engine's sessions as it reaches PostgreSQL's backends.
  if ("reloadSettings" in engine) {
    followReloads(env, guc, engine as Engine & { reloadSettings(r: EngineReload): void });
  }
  let listener: Listener | null = null;
  const address = params.engine;
  if (address.kind === "inproc") inprocEngines.set(address.id, engine);
  else {
    // Backends' connections stay here: never handed to another process.
    const net = await currentRuntime().inRealmNet();
    listener = await net.listen(
      { family: "unix", path: address.path },
      (conn) => void serveEngineConnection(engine, conn),
    );
  }
  link.sendSignal("engine-ready");
  const code = await stopped;
  if (address.kind === "inproc") inprocEngines.delete(address.id);
  await listener?.close();
  // In a process of its own, SIGQUIT leaves PGlite as a crash would and the
  // next opener replays the WAL. In the postmaster's realm the instance
  // cannot die with us, and a second opener next to a live one corrupts the
  // directory (the one-opener rule), so it is closed even then.
  if (code === 0 || address.kind === "inproc") {
    await engine.close();
    ereport("DEBUG1", "engine closed", { category: "engine" });
  }
  return code;
};

/** The entries of `all` that `names` name. */
function pick<T>(all: Readonly<Record<string, T>>, names: readonly string[]): Record<string, T> {
  const out: Record<string, T> = {};
  for (const name of names) if (Object.hasOwn(all, name)) out[name] = all[name]!;
  return out;
}

/** The server settings the engine starts with (`-c`), as the server's are now. */
function engineStartSettings(guc: Guc): Record<string, string> {
  return {
    // shared_buffers, work_mem, TimeZone... as set (tables_engine.ts).
    ...guc.engineSettings(),
    fsync: guc.getBool("fsync") ? "on" : "off",
    synchronous_commit: guc.getString("synchronous_commit"),
    wal_writer_delay: `${guc.getMs("wal_writer_delay")}ms`,
    max_prepared_transactions: String(guc.getInt("max_prepared_transactions")),
    // PGlite marks completed segments .ready for the archiver child.
    ...(guc.getString("archive_mode") === "off" ? {} : {
      archive_mode: "on",
      wal_level: "replica", // minimal is refused with archiving, logical always
    }),
  };
}

/** The PGlite engine on the data directory (the engine child's usual case). */
async function openPglite(
  params: ServerParams,
  guc: Guc,
  stop: (code: number) => void,
  reloadConf: () => void,
): Promise<Engine> {
  const { ClusterEngine, recoverySettings, setEngineCpuAffinity, takeRecoverySignal } =
    await import("../engines/pglite/mod.ts");
  setEngineCpuAffinity(guc.getBool("engine_cpu_affinity"));
  // recovery.signal: opening the engine is the archive recovery (recovery.ts).
  const recovering = takeRecoverySignal(params.dataDir);
  const settings = engineStartSettings(guc);
  const opening = ClusterEngine.open(params.dataDir, {
    placement: guc.getString("engine_placement") === "inline" ? "inline" : "worker",
    spinUs: guc.getInt("engine_spin_time"),
    settings: {
      ...settings,
      ...(recovering
        ? recoverySettings((name) =>
          name === "recovery_target_inclusive"
            ? (guc.getBool(name) ? "on" : "off")
            : guc.getString(name)
        )
        : {}),
    },
    settingFiles: pick(params.settingFiles ?? {}, Object.keys(settings)),
    engineWaitTimeoutMs: guc.getMs("engine_wait_timeout"),
    engineHoldTimeoutMs: guc.getMs("engine_hold_timeout"),
    idleInTransactionSessionTimeoutMs: guc.getMs("idle_in_transaction_session_timeout"),
    idleSessionTimeoutMs: guc.getMs("idle_session_timeout"),
    statementTimeoutMs: guc.getMs("statement_timeout"),
    lockTimeoutMs: guc.getMs("lock_timeout"),
    transactionTimeoutMs: guc.getMs("transaction_timeout"),
    idleTimeoutMs: guc.getMs("engine_idle_timeout"),
    archiveTimeoutMs: guc.getString("archive_mode") === "off" ? 0 : guc.getMs("archive_timeout"),
    // pg_reload_conf(): the postmaster's SIGHUP, as in PostgreSQL.
    onReloadConf: reloadConf,
    // A lost backend (a PANIC) is a crash: exiting makes the postmaster's
    // crash cycle reopen the cluster, which replays the WAL.
    onBroken: (reason) => {
      ereport("LOG", `engine lost its backend: ${reason}`, { category: "engine" });
      stop(3);
    },
  });
  const engine = recovering
    ? await opening.catch((e: unknown) => {
      // Postgres's own lines above say why; the common case is the target
      // reached with recovery_target_action = pause or shutdown.
      ereport("LOG", "archive recovery did not complete: the engine stopped during recovery", {
        category: "engine",
        hint:
          'Postgres\'s lines above say why. After "recovery stopping at …", it was recovery_target_action = pause (the default) or shutdown, which stop the engine at the target (pgts has no hot standby to pause in): set recovery_target_action = promote to end recovery there and open the cluster.',
      });
      throw e;
    })
    : await opening;
  if (engine.tempShared !== null) {
    ereport("WARNING", "temporary objects are shared by all sessions of this engine", {
      category: "engine",
      detail: engine.tempShared,
    });
  }
  if (engine.lockWaitsUnbounded !== null) {
    ereport("WARNING", "a wait for a lock a prepared transaction holds is not bounded", {
      category: "engine",
      detail: engine.lockWaitsUnbounded,
      hint:
        "Such a statement holds the engine until statement_timeout, a cancel, or for ever; set max_prepared_transactions = 0 unless two-phase commit is needed.",
    });
  }
  return engine;
}

/** The settings as the files set them now, and where the files set each. */
interface Reread {
  readonly guc: Guc;
  readonly files: Readonly<Record<string, readonly [file: string, line: number]>>;
}

/**
 * A child's SIGHUP: postgresql.conf (and postgresql.auto.conf) read again,
 * over the settings the child started with, except those the command line
 * set; null when the file cannot be read (the postmaster logs why).
 */
async function rereadSettings(env: ChildEnv): Promise<Reread | null> {
  const configFile = joinPath(serverParams(env).dataDir, "postgresql.conf");
  const { nodeConfigReader } = await import("../adapters/node/config-reader.ts");
  const file = new Guc({ reader: nodeConfigReader, configFile });
  try {
    file.load();
  } catch {
    return null;
  }
  // The files do not change what the command line set.
  const params = serverParams(env);
  const fromFiles: Record<string, string> = { ...file.snapshot() };
  for (const name of params.commandLine ?? []) delete fromFiles[name];
  return {
    guc: Guc.fromSnapshot({ ...params.settings, ...fromFiles }),
    files: file.settingFiles(Object.keys(fromFiles)),
  };
}

/**
 * The engine child's SIGHUP: the parameters passed to the engine that a
 * reload may change (not postmaster ones, whose change the postmaster
 * logs as needing a restart) go to its backends with their new values,
 * and the session defaults pgts enforces follow.
 */
function followReloads(
  env: ChildEnv,
  started: Guc,
  engine: { reloadSettings(r: EngineReload): void },
): void {
  let current = started;
  // Where the files set what the engine runs with: a parameter a reload
  // cannot change keeps the start's (its value is the start's too).
  let files = pick(serverParams(env).settingFiles ?? {}, Object.keys(engineStartSettings(started)));
  env.onSignal("SIGHUP", () => {
    void rereadSettings(env).then((reread) => {
      if (reread === null) return;
      const next = reread.guc;
      // What the engine was started with, synchronous_commit and the rest
      // pgts passes itself included (engineSettings() alone left a reloaded
      // synchronous_commit out of the engine).
      const before = engineStartSettings(current);
      const after = engineStartSettings(next);
      const reloadable = (name: string) => {
        const context = next.describe(name).def.context;
        return context !== "postmaster" && context !== "internal";
      };
      const names = [...new Set([...Object.keys(before), ...Object.keys(after)])];
      const settings: [string, string][] = [];
      for (const name of names) {
        if (!reloadable(name)) continue;
        const value = after[name] ?? next.get(name);
        if (value !== (before[name] ?? current.get(name))) settings.push([name, value]);
      }
      const kept = Object.keys(files).filter((name) => !reloadable(name));
      files = { ...pick(files, kept), ...pick(reread.files, names.filter(reloadable)) };
      current = next;
      engine.reloadSettings({
        settings,
        settingFiles: files,
        statementTimeoutMs: next.getMs("statement_timeout"),
        lockTimeoutMs: next.getMs("lock_timeout"),
        idleInTransactionSessionTimeoutMs: next.getMs("idle_in_transaction_session_timeout"),
        idleSessionTimeoutMs: next.getMs("idle_session_timeout"),
        transactionTimeoutMs: next.getMs("transaction_timeout"),
      });
    });
  });
}

/**
 * The transaction pool in front of the upstream. A reload (SIGHUP) re-reads
 * postgresql.conf here: the pool's settings are sighup parameters, and the
 * engine child is the one process that holds them. A value the file sets
 * replaces the one the pool started with, unless -c gave it.
 */
function openPool(url: string, guc: Guc, env: ChildEnv): Engine {
  let current = guc;
  const pool = new UpstreamPool(url, {
    connect: connectUpstream,
    startTls: startTlsUpstream,
    loginAs: guc.getString("upstream_login") === "url" ? "url" : "client",
    settings: poolSettingsOf(guc),
    modes: poolModesOf(guc),
    authFile: authFileOf(() => current.getString("auth_file"), serverParams(env).dataDir),
  });
  const reload = () => {
    // What the file sets now, over what the pool started with.
    void rereadSettings(env).then((reread) => {
      if (reread === null) return;
      current = reread.guc;
      pool.configure(poolSettingsOf(current));
    });
  };
  env.onSignal("SIGHUP", reload);
  // The "pgts" database is the pool's admin console (SHOW POOLS...), for superusers.
  return withAdminConsole(pool, poolConsole(pool, { reload, config: () => current }));
}

/**
 * The checkpointer. PGlite checkpoints by itself and at close, which the
 * engine child does at shutdown; this child keeps PostgreSQL's shape of the
 * shutdown sequence (it is the last to go, on SIGUSR2).
 */
export const checkpointerMain: ChildMain = (env) => {
  return new Promise<number>((resolve) => {
    env.onSignal("SIGUSR2", () => resolve(0));
    env.onSignal("SIGQUIT", () => resolve(2));
    env.onSignal("SIGTERM", () => {});
    env.onSignal("SIGINT", () => {});
    env.onSignal("SIGHUP", () => {});
  });
};

/**
 * The archiver (archiver.ts): archives the engine's completed WAL segments
 * while archive_mode is on. SIGUSR2 (after the shutdown checkpoint was
 * asked for) archives what is ready and exits; SIGQUIT exits at once;
 * SIGHUP re-reads postgresql.conf for archive_command and archive_library.
 */
export const archiverMain: ChildMain = async (env) => {
  const { params, guc } = await setUpChild(env);
  const archiver = await import("./archiver.ts");
  let settings = archiver.archiverSettings(guc);
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const quit = new AbortController();
  env.abort.addEventListener("abort", () => quit.abort());
  env.onSignal("SIGUSR2", () => finish());
  env.onSignal("SIGQUIT", () => quit.abort());
  env.onSignal("SIGTERM", () => {});
  env.onSignal("SIGINT", () => {});
  env.onSignal("SIGHUP", () => {
    // What the file sets now, over what the archiver started with.
    void rereadSettings(env).then((reread) => {
      if (reread !== null) settings = archiver.archiverSettings(reread.guc);
    });
  });
  return await archiver.pgArchiverMain({
    dataDir: params.dataDir,
    settings: () => settings,
    finish: finished,
    quit: quit.signal,
  });
};
