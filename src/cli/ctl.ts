/**
 * `pgts stop`, `pgts reload` and `pgts status`: pg_ctl's verbs for a running
 * server, working only through postmaster.pid and signals, with pg_ctl's
 * messages and exit codes (status: 3 when no server runs, 4 when the
 * directory is missing or not a cluster). They never touch the server's
 * files beyond reading them.
 */

import { type ArchiverStats, readArchiverStats } from "../server/archiver.ts";
import { existsSync, readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import process from "node:process";
import { OPTS_FILE, PID_FILE, VERSION_FILE } from "../core/datadir.ts";
import { processIsAlive } from "../adapters/node/datadir.ts";
import { strerror } from "../adapters/node/fs-errors.ts";
import { CliExit, type CliIO, dataDirFrom, parseVerbArgs, PROGNAME } from "./args.ts";

export type ShutdownMode = "smart" | "fast" | "immediate";

/** The signal pg_ctl sends for each shutdown mode. */
export function shutdownSignal(mode: ShutdownMode): "SIGTERM" | "SIGINT" | "SIGQUIT" {
  switch (mode) {
    case "smart":
      return "SIGTERM";
    case "fast":
      return "SIGINT";
    case "immediate":
      return "SIGQUIT";
    default: {
      const never: never = mode;
      throw new TypeError(`Unknown shutdown mode ${String(never)}`);
    }
  }
}

export const STOP_USAGE = `${PROGNAME} stop -D DATADIR [-m SHUTDOWN-MODE] [-t SECS] [-W]`;
export const RELOAD_USAGE = `${PROGNAME} reload -D DATADIR`;
export const STATUS_USAGE = `${PROGNAME} status -D DATADIR`;

export const STOP_HELP = `${PROGNAME} stop shuts down a running pgts server.

Usage:
  ${STOP_USAGE}

Options:
  -D, --pgdata=DATADIR   location of the database storage area (default: $PGDATA)
  -m, --mode=MODE        MODE can be "smart", "fast", or "immediate" (default: fast)
  -t, --timeout=SECS     seconds to wait for the server to stop (default: 60)
  -W, --no-wait          do not wait for the server to stop
  -h, --help             show this help, then exit

Shutdown modes are:
  smart       quit after all clients have disconnected (SIGTERM)
  fast        quit directly, with proper shutdown (SIGINT)
  immediate   quit without complete shutdown; will lead to recovery on restart (SIGQUIT)

Exit status: 0 when the server stopped, 1 otherwise.
`;

export const RELOAD_HELP =
  `${PROGNAME} reload makes a running server re-read its configuration files
(postgresql.conf, pg_hba.conf) by sending it SIGHUP.

Usage:
  ${RELOAD_USAGE}

Options:
  -D, --pgdata=DATADIR   location of the database storage area (default: $PGDATA)
  -h, --help             show this help, then exit
`;

export const STATUS_HELP =
  `${PROGNAME} status reports whether a server is running on a data directory.

Usage:
  ${STATUS_USAGE}

Options:
  -D, --pgdata=DATADIR   location of the database storage area (default: $PGDATA)
  -h, --help             show this help, then exit

Exit status: 0 when a server is running, 3 when none is, 4 when the data
directory is missing or is not a pgts cluster.
`;

const dataDirOption = {
  pgdata: { type: "string", short: "D" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * pg_ctl's get_pgpid: the PID in postmaster.pid, or 0 when there is none.
 * Exits (4 for status, else 1) when the directory is missing or not a cluster.
 */
function getPid(dataDir: string, io: CliIO, isStatus: boolean): number {
  const badDir = isStatus ? 4 : 1;
  try {
    statSync(dataDir);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "ENOENT") io.err(`${PROGNAME}: directory "${dataDir}" does not exist\n`);
    else io.err(`${PROGNAME}: could not access directory "${dataDir}": ${strerror(e)}\n`);
    throw new CliExit(badDir);
  }
  if (!existsSync(`${dataDir}/${VERSION_FILE}`)) {
    io.err(`${PROGNAME}: directory "${dataDir}" is not a database cluster directory\n`);
    throw new CliExit(badDir);
  }
  const pidFile = `${dataDir}/${PID_FILE}`;
  let text: string;
  try {
    text = readFileSync(pidFile, "utf8");
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") return 0;
    io.err(`${PROGNAME}: could not open PID file "${pidFile}": ${strerror(e)}\n`);
    throw new CliExit(1);
  }
  const pid = Number.parseInt(text, 10);
  if (!Number.isInteger(pid)) {
    io.err(
      text.length === 0
        ? `${PROGNAME}: the PID file "${pidFile}" is empty\n`
        : `${PROGNAME}: invalid data in PID file "${pidFile}"\n`,
    );
    throw new CliExit(1);
  }
  return pid;
}

function noPidFile(dataDir: string, io: CliIO): never {
  io.err(`${PROGNAME}: PID file "${dataDir}/${PID_FILE}" does not exist\n`);
  io.err("Is server running?\n");
  throw new CliExit(1);
}

/** Like pg_ctl's postmaster_is_alive: never our own or our parent's PID. */
function postmasterIsAlive(pid: number): boolean {
  if (pid === process.pid || pid === process.ppid) return false;
  return processIsAlive(pid);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function runStop(args: string[], io: CliIO): Promise<number> {
  const v = parseVerbArgs("stop", args, {
    options: {
      ...dataDirOption,
      mode: { type: "string", short: "m" },
      timeout: { type: "string", short: "t" },
      "no-wait": { type: "boolean", short: "W" },
    },
    usage: STOP_USAGE,
    io,
  });
  if (v.help) {
    io.out(STOP_HELP);
    return 0;
  }
  const modes: Record<string, ShutdownMode> = {
    s: "smart",
    smart: "smart",
    f: "fast",
    fast: "fast",
    i: "immediate",
    immediate: "immediate",
  };
  const mode = modes[v.mode ?? "fast"];
  if (mode === undefined) {
    io.err(`${PROGNAME}: unrecognized shutdown mode "${v.mode}"\n`);
    io.err(`Try "${PROGNAME} stop --help" for more information.\n`);
    return 1;
  }
  const timeout = Number(v.timeout ?? "60");
  if (!Number.isInteger(timeout) || timeout < 0) {
    io.err(`${PROGNAME}: invalid timeout "${v.timeout}"\n`);
    io.err(`Try "${PROGNAME} stop --help" for more information.\n`);
    return 1;
  }
  const dataDir = resolve(dataDirFrom("stop", v.pgdata, io));
  const pid = getPid(dataDir, io, false);
  if (pid === 0) noPidFile(dataDir, io);
  try {
    process.kill(pid, shutdownSignal(mode));
  } catch (e) {
    io.err(`${PROGNAME}: could not send stop signal (PID: ${pid}): ${strerror(e)}\n`);
    return 1;
  }
  if (v["no-wait"]) {
    io.out("server shutting down\n");
    return 0;
  }
  io.out("waiting for server to shut down...");
  // pg_ctl's wait_for_postmaster_stop: poll ten times a second, a dot a second.
  let stopped = false;
  for (let tick = 0; tick < timeout * 10; tick++) {
    const now = getPid(dataDir, io, false);
    if (now === 0) {
      stopped = true;
      break;
    }
    if (!processIsAlive(now)) {
      // Died without removing its lock file: check once more, then give up.
      stopped = getPid(dataDir, io, false) === 0;
      break;
    }
    if (tick % 10 === 0) io.out(".");
    await sleep(100);
  }
  if (!stopped) {
    io.out(" failed\n");
    io.err(`${PROGNAME}: server does not shut down\n`);
    if (mode === "smart") {
      io.err(
        'HINT: The "-m fast" option immediately disconnects sessions rather than\n' +
          "waiting for session-initiated disconnection.\n",
      );
    }
    return 1;
  }
  io.out(" done\n");
  io.out("server stopped\n");
  return 0;
}

export function runReload(args: string[], io: CliIO): number {
  const v = parseVerbArgs("reload", args, { options: dataDirOption, usage: RELOAD_USAGE, io });
  if (v.help) {
    io.out(RELOAD_HELP);
    return 0;
  }
  const dataDir = resolve(dataDirFrom("reload", v.pgdata, io));
  const pid = getPid(dataDir, io, false);
  if (pid === 0) noPidFile(dataDir, io);
  try {
    process.kill(pid, "SIGHUP");
  } catch (e) {
    io.err(`${PROGNAME}: could not send reload signal (PID: ${pid}): ${strerror(e)}\n`);
    return 1;
  }
  io.out("server signaled\n");
  return 0;
}

/** pg_stat_archiver's columns, one per line, as `pgts status` prints them. */
function archiverStatus(s: ArchiverStats): string {
  const lines = Object.entries(s).map(([k, v]) => `  ${k}: ${v ?? ""}`);
  return `archiver (pg_stat_archiver):\n${lines.join("\n")}\n`;
}

export function runStatus(args: string[], io: CliIO): number {
  const v = parseVerbArgs("status", args, { options: dataDirOption, usage: STATUS_USAGE, io });
  if (v.help) {
    io.out(STATUS_HELP);
    return 0;
  }
  const dataDir = resolve(dataDirFrom("status", v.pgdata, io));
  const pid = getPid(dataDir, io, true);
  if (pid > 0 && postmasterIsAlive(pid)) {
    io.out(`${PROGNAME}: server is running (PID: ${pid})\n`);
    try {
      io.out(readFileSync(`${dataDir}/${OPTS_FILE}`, "utf8"));
    } catch {
      // postmaster.opts is informational only.
    }
    const archiver = readArchiverStats(dataDir);
    if (archiver !== null) io.out(archiverStatus(archiver));
    return 0;
  }
  io.out(`${PROGNAME}: no server running\n`);
  return 3;
}
