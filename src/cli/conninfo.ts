/**
 * Where `pgts dump` and `pgts restore` connect, from libpq's options and
 * variables: -h/--host (a directory for a Unix socket, as libpq), -p/--port,
 * -U/--username, -d/--dbname, PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD;
 * or -D/--pgdata (PGDATA when no -h/-p/PGHOST/PGPORT), which finds a running
 * pgts server's socket and port in its postmaster.pid. Reads files only.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseLockFile, PID_FILE } from "../core/datadir.ts";
import type { UpstreamAddress } from "../engines/upstream/url.ts";
import { CliExit, type CliIO, PROGNAME } from "./args.ts";

export interface ConnTarget {
  readonly address: UpstreamAddress;
  readonly user: string;
  readonly database: string;
  readonly password: string | null;
  /** How the server is named in messages, as libpq does. */
  readonly display: string;
}

/** The connection options every verb that connects takes (node:util parseArgs form). */
export const CONN_OPTIONS = {
  dbname: { type: "string", short: "d" },
  host: { type: "string", short: "h" },
  port: { type: "string", short: "p" },
  username: { type: "string", short: "U" },
  pgdata: { type: "string", short: "D" },
} as const;

export const CONN_HELP = `Connection options:
  -d, --dbname=DBNAME      database name (not a connection string; default: $PGDATABASE,
                           else the user name)
  -h, --host=HOSTNAME      server host or socket directory (default: $PGHOST, else localhost)
  -p, --port=PORT          server port (default: $PGPORT, else 5432)
  -U, --username=NAME      user name (default: $PGUSER, else postgres)
  -D, --pgdata=DATADIR     connect to the pgts server running on DATADIR, through the
                           socket and port in its postmaster.pid (default: $PGDATA when
                           no host or port is given)
  The password, when the server asks for one, is $PGPASSWORD.`;

interface ConnValues {
  dbname?: string | undefined;
  host?: string | undefined;
  port?: string | undefined;
  username?: string | undefined;
  pgdata?: string | undefined;
}

function fail(verb: string, io: CliIO, message: string): never {
  io.err(`${PROGNAME} ${verb}: error: ${message}\n`);
  throw new CliExit(1);
}

function socketAddress(dir: string, port: number): UpstreamAddress {
  return { family: "unix", path: join(dir, `.s.PGSQL.${port}`) };
}

/** The running server of a data directory, from its postmaster.pid. */
function fromDataDir(verb: string, dataDir: string, io: CliIO): UpstreamAddress {
  let text: string;
  try {
    text = readFileSync(join(dataDir, PID_FILE), "utf8");
  } catch {
    return fail(
      verb,
      io,
      `no server running on data directory "${dataDir}" (no ${PID_FILE}); start it with "${PROGNAME} start -D ${dataDir}"`,
    );
  }
  const lock = parseLockFile(text);
  if (lock === null || lock.port === 0) {
    return fail(verb, io, `could not read the server's port from "${join(dataDir, PID_FILE)}"`);
  }
  if (lock.status !== "ready") {
    return fail(
      verb,
      io,
      `the server on "${dataDir}" is not ready (status "${lock.status ?? ""}")`,
    );
  }
  if (lock.socketDir !== "") return socketAddress(lock.socketDir, lock.port);
  const listen = lock.listenAddress.split(",")[0]?.trim() ?? "";
  const host = listen === "" || listen === "*" || listen === "0.0.0.0"
    ? "127.0.0.1"
    : listen === "::"
    ? "::1"
    : listen;
  return { family: "tcp", host, port: lock.port };
}

/** Resolves the options to a server, a user and a database; reports bad ones and exits 1. */
export function connTarget(verb: string, values: ConnValues, io: CliIO): ConnTarget {
  const env = io.env;
  const nonEmpty = (v: string | undefined) => (v === undefined || v === "" ? undefined : v);
  if (values.dbname !== undefined && /=|^postgres(ql)?:\/\//.test(values.dbname)) {
    fail(verb, io, "-d/--dbname takes a database name; give the server with -h/-p or -D");
  }
  const user = nonEmpty(values.username) ?? nonEmpty(env.PGUSER) ?? "postgres";
  const database = nonEmpty(values.dbname) ?? nonEmpty(env.PGDATABASE) ?? user;
  const password = nonEmpty(env.PGPASSWORD) ?? null;
  const host = nonEmpty(values.host) ?? nonEmpty(env.PGHOST);
  const portText = nonEmpty(values.port) ?? nonEmpty(env.PGPORT);
  const dataDir = nonEmpty(values.pgdata) ??
    (host === undefined && portText === undefined ? nonEmpty(env.PGDATA) : undefined);
  if (dataDir !== undefined) {
    if (values.host !== undefined || values.port !== undefined) {
      fail(verb, io, "-D/--pgdata cannot be used together with -h/--host or -p/--port");
    }
    const address = fromDataDir(verb, dataDir, io);
    return { address, user, database, password, display: describe(address) };
  }
  const port = portText === undefined ? 5432 : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    fail(verb, io, `invalid port number: "${portText}"`);
  }
  const address: UpstreamAddress = host?.startsWith("/")
    ? socketAddress(host, port)
    : { family: "tcp", host: host ?? "localhost", port };
  return { address, user, database, password, display: describe(address) };
}

/** libpq's way of naming a server in "connection to server ... failed". */
export function describe(address: UpstreamAddress): string {
  return address.family === "unix"
    ? `on socket "${address.path}"`
    : `at "${address.host}", port ${address.port}`;
}

/** A libpq keyword/value connection string for the WASM pg_dump (values quoted). */
export function conninfoString(target: ConnTarget): string {
  const quote = (v: string) => `'${v.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
  const parts = [`dbname=${quote(target.database)}`, `user=${quote(target.user)}`];
  if (target.password !== null) parts.push(`password=${quote(target.password)}`);
  return parts.join(" ");
}
