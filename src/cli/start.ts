/**
 * `pgts start`: runs the server in the foreground, the way `postgres -D`
 * does (use `&`, a service manager or a terminal to background it). It
 * checks the data directory, loads postgresql.conf with `-p` and `-c`
 * overrides, configures logging, takes postmaster.pid, and then calls
 * `startServer`, the single hand-off point to the postmaster. Whatever
 * happens after, the lock file is released on the way out.
 */

import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import process from "node:process";
import type { DataDirectory, DataDirLock } from "../core/datadir.ts";
import { OPTS_FILE } from "../core/datadir.ts";
import { ereport, ERRCODE, isPgError } from "../core/elog.ts";
import { Guc } from "../core/guc/guc.ts";
import { splitList } from "../core/guc/values.ts";
import { configureLogging, type LogLinePrefix } from "../core/log.ts";
import { nodeConfigReader } from "../adapters/node/config-reader.ts";
import { enableStartupTrace, startupTrace } from "../core/starttrace.ts";
import { openDataDirectory } from "../adapters/node/datadir.ts";
import { stderrSink } from "../adapters/node/logfiles.ts";
import { type AdapterName, adapterNamed, ADAPTERS, runServer } from "../server/server.ts";
import {
  applyOverrides,
  type CliIO,
  dataDirFrom,
  parseVerbArgs,
  PROGNAME,
  settingOverrides,
} from "./args.ts";

/** Everything the postmaster gets from `pgts start`. */
export interface StartServerOptions {
  /** The checked data directory. */
  readonly dataDir: DataDirectory;
  /** Loaded settings (file, then -p/-c); `guc.reload()` on SIGHUP re-reads the file. */
  readonly guc: Guc;
  /** postmaster.pid, status "starting"; update it with sockets and "ready". The CLI releases it. */
  readonly lock: DataDirLock;
  /** From --adapter; undefined lets the server pick for the runtime. */
  readonly adapter?: AdapterName;
  /** The postmaster's log prefix state; logging already goes to stderr. */
  readonly log: LogLinePrefix;
  /** The start time written in postmaster.pid, ms since the epoch. */
  readonly startTime: number;
}

/** The single hand-off from the CLI to the server; resolves with the exit code. */
export function startServer(options: StartServerOptions): Promise<number> {
  return runServer({
    dataDir: options.dataDir,
    guc: options.guc,
    lock: options.lock,
    ...(options.adapter === undefined ? {} : { adapter: options.adapter }),
  });
}

export const START_USAGE =
  `${PROGNAME} start -D DATADIR [-p PORT] [-c NAME=VALUE]... [--adapter inproc|subprocess|worker] [--engine pglite|URL]`;

export const START_HELP =
  `${PROGNAME} start runs a pgts server on a data directory, in the foreground.

Usage:
  ${START_USAGE}

Options:
  -D, --pgdata=DATADIR      location of the database storage area (default: $PGDATA)
  -p, --port=PORT           port to listen on (same as -c port=PORT; 0 lets the kernel pick)
  -c NAME=VALUE             set a configuration parameter, overriding postgresql.conf;
                            may be repeated
      --adapter=ADAPTER     how backends run: "inproc" (the default: tasks in
                            this process, PGlite on a thread of its own, so a
                            running statement never holds the server and a
                            cancel stops it at once), "subprocess" (a process
                            per backend, Bun's or forked Deno's; "bun" is the
                            same) or "worker" (a Web Worker per backend)
      --engine=ENGINE       the SQL engine: "pglite" (the data directory's own)
                            or a "postgres://user:password@host:port/db" URL
                            of an upstream PostgreSQL server, which every
                            session then uses through a connection of its own
                            (same as -c engine=ENGINE)
  -h, --help                show this help, then exit

"-c engine_placement=inline" runs PGlite on the postmaster's own thread
instead ("inproc" only): a little faster per statement, but a running
statement then holds the whole server, and a cancel acts once it ends.
"-c engine_spin_time=MICROSECONDS" (default 200) is how long PGlite's thread
polls for the next statement before it sleeps, adapting to the gaps it
sees (a statement after a sleep runs slower); up to five times as long for
the next statement of a session inside a transaction block; 0 always sleeps
at once.
"-c engine_cpu_affinity=off" leaves PGlite's thread to the kernel; on (the
default), on Linux with 2 to 4 CPUs, it keeps off the first CPU while it is
the only database engine open, so that it and the thread that runs the
sessions stop landing on one CPU (select-only statements ~10% faster); set
it off where two busy pgts servers share a small machine.

SSL: "-c ssl=on" (or ssl = on in postgresql.conf, as "${PROGNAME} init --ssl" writes)
serves SSLRequest and PostgreSQL 17's direct SSL on the same port, with
ssl_cert_file (default server.crt) and ssl_key_file (server.key) relative to
the data directory; ssl_ca_file enables client certificates (pg_hba.conf's
clientcert and cert). pg_hba.conf's hostssl and hostnossl lines tell the two
kinds of connection apart. The files are re-read on reload.

Stop the server with "${PROGNAME} stop -D DATADIR", or with SIGTERM (smart),
SIGINT (fast) or SIGQUIT (immediate) to its PID.
`;

function report(e: unknown): void {
  if (isPgError(e)) {
    ereport(e.severity, e.message, { ...e.fields, code: e.code });
  } else {
    ereport("FATAL", e instanceof Error ? e.message : String(e), { code: ERRCODE.INTERNAL_ERROR });
  }
}

const quote = (s: string) => `"${s.replace(/(["\\$`])/g, "\\$1")}"`;

export async function runStart(args: string[], io: CliIO): Promise<number> {
  const v = parseVerbArgs("start", args, {
    options: {
      pgdata: { type: "string", short: "D" },
      port: { type: "string", short: "p" },
      c: { type: "string", short: "c", multiple: true },
      adapter: { type: "string" },
      engine: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    usage: START_USAGE,
    io,
  });
  if (v.help) {
    io.out(START_HELP);
    return 0;
  }
  const adapter = v.adapter === undefined ? undefined : adapterNamed(v.adapter);
  if (v.adapter !== undefined && adapter === undefined) {
    io.err(`${PROGNAME} start: invalid adapter "${v.adapter}"\n`);
    io.err(
      `Valid adapters are ${ADAPTERS.map((a) => `"${a}"`).join(", ")} ("bun" is "subprocess").\n`,
    );
    return 1;
  }
  const dataDirPath = resolve(dataDirFrom("start", v.pgdata, io));
  const startTime = Date.now();
  const proc = { pid: process.pid, backendType: "postmaster", startTime };
  // Until the file is read, messages are printed with the built-in defaults.
  configureLogging(new Guc(), { sink: stderrSink, process: proc });

  const dataDir = openDataDirectory(dataDirPath);
  const guc = new Guc({ reader: nodeConfigReader, configFile: `${dataDir.path}/postgresql.conf` });
  let lock: DataDirLock | undefined;
  try {
    dataDir.check();
    guc.set("data_directory", dataDir.path, { source: "override" });
    // On errors, load() logs each one with its file and line, then throws
    // FATAL "configuration file ... contains errors".
    guc.load();
    const first: [string, string][] = [];
    if (v.port !== undefined) first.push(["port", v.port]);
    if (v.engine !== undefined) first.push(["engine", v.engine]);
    applyOverrides(guc, settingOverrides(v.c, first));
    const log = configureLogging(guc, { sink: stderrSink, process: proc });
    // PGTS_STARTUP_TRACE=1: where the start goes, from the process's start
    // (this realm's time origin) to the first answered query (starttrace.ts).
    if (process.env["PGTS_STARTUP_TRACE"] === "1") {
      enableStartupTrace(performance.timeOrigin);
      startupTrace("settings read");
    }
    lock = dataDir.lock({
      pid: process.pid,
      port: guc.getInt("port"),
      startTime: Math.floor(startTime / 1000),
    });
    writeFileSync(
      `${dataDir.path}/${OPTS_FILE}`,
      `${PROGNAME} ${["start", "-D", dataDir.path, ...args].map(quote).join(" ")}\n`,
    );
    const listen = splitList(guc.getString("listen_addresses")) ?? [];
    ereport("DEBUG1", `starting ${PROGNAME} on "${dataDir.path}"`, {
      detail: `listen_addresses: ${listen.join(", ") || "(none)"}, port ${guc.getInt("port")}`,
    });
    return await startServer({
      dataDir,
      guc,
      lock,
      log,
      startTime,
      ...(adapter === undefined ? {} : { adapter }),
    });
  } catch (e) {
    report(e);
    return 1;
  } finally {
    lock?.release();
  }
}
