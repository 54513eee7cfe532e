/**
 * The `pgts` command: dispatches to the verbs (init, start, stop, reload,
 * status, serve-http, dump, restore, basebackup), prints the top-level help and version,
 * and turns every outcome into an exit code. It never exits the process:
 * the entry points (mod.ts, and src/bin/pgts.ts in the compiled binary)
 * call `process.exit` with what `main` resolves to.
 */

import { SERVER_VERSION } from "../core/guc/tables.ts";
import { CliExit, type CliIO, PGTS_VERSION, processIO, PROGNAME } from "./args.ts";

export const HELP = `${PROGNAME} runs PostgreSQL's process architecture on Bun and Deno.

Usage:
  ${PROGNAME} init   -D DATADIR [-U NAME] [-A METHOD] [--pwfile FILE]
  ${PROGNAME} start  -D DATADIR [-p PORT] [-c NAME=VALUE]... [--adapter inproc|subprocess|worker] [--engine pglite|URL]
  ${PROGNAME} stop   -D DATADIR [-m smart|fast|immediate] [-t SECS] [-W]
  ${PROGNAME} reload -D DATADIR
  ${PROGNAME} status -D DATADIR
  ${PROGNAME} serve-http [-D DATADIR] [--engine URL] [--port PORT] [--admin-token TOKEN] ...
  ${PROGNAME} dump    [-D DATADIR | -h HOST -p PORT] [-F p|c] [-f FILE] [-s|-a] [-t TABLE]...
  ${PROGNAME} restore [-D DATADIR | -h HOST -p PORT] [-1] FILE
  ${PROGNAME} basebackup -D DIRECTORY [-F plain|tar] [-z] [-X fetch|none] [-P] [-h HOST -p PORT]

Commands:
  init     create a new database cluster
  start    run the server in the foreground
  stop     shut down a running server
  reload   make a running server re-read its configuration files
  status   report whether a server is running
  serve-http  serve the data directory over HTTP (Neon's SQL over HTTP, admin API)
  dump     write a database of a running server as SQL (or an archive)
  restore  run a plain SQL dump against a running server
  basebackup  take a base backup of a running server

Options:
  -h, --help      show this help, then exit
  -V, --version   output version information, then exit

"${PROGNAME} COMMAND --help" describes a command's options. If -D is
omitted, the environment variable PGDATA is used.
`;

type Verb =
  | "init"
  | "start"
  | "stop"
  | "reload"
  | "status"
  | "serve-http"
  | "dump"
  | "restore"
  | "basebackup";
const VERBS: readonly Verb[] = [
  "init",
  "start",
  "stop",
  "reload",
  "status",
  "serve-http",
  "dump",
  "restore",
  "basebackup",
];

/**
 * Each verb's module is loaded when that verb runs: `pgts start` (and the
 * `pgts stop` a script runs after it) does not parse the dump, base backup,
 * HTTP and init code, a few tens of milliseconds of CPU at every start.
 */
async function runVerb(verb: Verb, args: string[], io: CliIO): Promise<number> {
  switch (verb) {
    case "init":
      return await (await import("./init.ts")).runInit(args, io);
    case "start":
      return await (await import("./start.ts")).runStart(args, io);
    case "stop":
      return await (await import("./ctl.ts")).runStop(args, io);
    case "reload":
      return await (await import("./ctl.ts")).runReload(args, io);
    case "status":
      return await (await import("./ctl.ts")).runStatus(args, io);
    case "serve-http":
      return await (await import("./serve-http.ts")).runServeHttp(args, io);
    case "dump":
      return await (await import("./dump.ts")).runDump(args, io);
    case "restore":
      return await (await import("./restore.ts")).runRestore(args, io);
    case "basebackup":
      return await (await import("./basebackup.ts")).runBasebackup(args, io);
    default: {
      const never: never = verb;
      throw new TypeError(`Unknown verb ${String(never)}`);
    }
  }
}

/** Runs `pgts` with `args` (without the program name); resolves with the exit code. */
export async function main(args: string[], io: CliIO = processIO): Promise<number> {
  const [first, ...rest] = args;
  if (first === undefined) {
    io.err(`${PROGNAME}: no operation specified\n`);
    io.err(`Try "${PROGNAME} --help" for more information.\n`);
    return 1;
  }
  if (first === "--help" || first === "-h" || first === "-?") {
    io.out(HELP);
    return 0;
  }
  if (first === "--version" || first === "-V") {
    // The release the embedded engine is, which clients see as server_version.
    io.out(`${PROGNAME} (pgts) ${PGTS_VERSION}, embedded engine PostgreSQL ${SERVER_VERSION}\n`);
    return 0;
  }
  if (!(VERBS as readonly string[]).includes(first)) {
    io.err(
      first.startsWith("-")
        ? `${PROGNAME}: unrecognized option '${first}'\n`
        : `${PROGNAME}: unrecognized operation mode "${first}"\n`,
    );
    io.err(`Usage: ${PROGNAME} COMMAND [OPTION]...  (COMMAND: ${VERBS.join(", ")})\n`);
    io.err(`Try "${PROGNAME} --help" for more information.\n`);
    return 1;
  }
  try {
    return await runVerb(first as Verb, rest, io);
  } catch (e) {
    if (e instanceof CliExit) return e.code;
    throw e;
  }
}
