/**
 * `pgts serve-http`: runs the HTTP adapter on a data directory, in the
 * foreground. Like `pgts start` it checks the directory, loads
 * postgresql.conf (with `-c` overrides) and pg_hba.conf, and takes
 * postmaster.pid, since the engine must be the directory's only opener.
 * With `engine = 'postgres://...'` (or `--engine URL`) the SQL is an
 * upstream PostgreSQL's, and the directory is optional: without one, the
 * settings are the built-in ones plus `-c`, pg_hba.conf is the default
 * (trust from loopback only), and no file is read or written. Then every
 * HTTP request on `--port` is a backend run (Neon's SQL over
 * HTTP on `/sql`, the admin API on `/admin` with `--admin-token` or
 * PGTS_ADMIN_TOKEN), and `--pg-port` adds a PostgreSQL-protocol port for
 * psql, whose database `pgts` is the admin console.
 *
 * SIGTERM, SIGINT and SIGQUIT stop it (smart, fast, immediate), SIGHUP
 * re-reads both files. The lock file is released on the way out.
 */

import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import process from "node:process";
import { parseHba } from "../core/auth/mod.ts";
import type { DataDirLock } from "../core/datadir.ts";
import { ereport, ERRCODE, isPgError, PgError } from "../core/elog.ts";
import { Guc } from "../core/guc/guc.ts";
import { configureLogging } from "../core/log.ts";
import type { ListenAddress } from "../core/adapter.ts";
import type { PostmasterSignal } from "../core/postmaster/pmstate.ts";
import { checkEngineSetting, isUpstreamUrl, redact } from "../engines/upstream/url.ts";
import {
  poolModesOf,
  poolSettingsOf,
  poolsTransactions,
} from "../engines/upstream/pool-settings.ts";
import type { HttpEngineConfig } from "../http/server.ts";
import { authFileReader } from "../adapters/node/auth-file-reader.ts";
import { nodeConfigReader } from "../adapters/node/config-reader.ts";
import { openDataDirectory } from "../adapters/node/datadir.ts";
import { stderrSink } from "../adapters/node/logfiles.ts";
import {
  applyOverrides,
  type CliIO,
  dataDirFrom,
  parseVerbArgs,
  PROGNAME,
  settingOverrides,
} from "./args.ts";

export const SERVE_HTTP_USAGE =
  `${PROGNAME} serve-http [-D DATADIR] [--engine URL] [--port PORT] ` +
  "[--host HOST] [--tls-cert FILE --tls-key FILE] [--pg-port PORT] [--admin-token TOKEN] " +
  "[--max-body BYTES] [-c NAME=VALUE]...";

export const SERVE_HTTP_HELP =
  `${PROGNAME} serve-http serves a data directory over HTTP, one backend run per request.

Usage:
  ${SERVE_HTTP_USAGE}

Options:
  -D, --pgdata=DATADIR      location of the database storage area (default: $PGDATA);
                            not needed with an upstream --engine
      --engine=ENGINE       the SQL engine: "pglite" (the data directory's own)
                            or a "postgres://user:password@host:port/db" URL of
                            an upstream PostgreSQL server, which every request
                            then uses through a connection of its own
                            (same as -c engine=ENGINE)
      --port=PORT           HTTP port (default 8080; 0 lets the kernel pick)
      --host=HOST           HTTP address to listen on (default 127.0.0.1)
      --tls-cert=FILE       serve HTTPS with this certificate (PEM; a chain may follow)
      --tls-key=FILE        ... and this private key (PEM); both or neither
      --pg-port=PORT        also accept PostgreSQL-protocol clients (psql) on this port
      --admin-token=TOKEN   turn on the admin API (default: $PGTS_ADMIN_TOKEN)
      --max-body=BYTES      largest request body accepted (default 10485760)
  -c NAME=VALUE             set a configuration parameter, overriding postgresql.conf
  -h, --help                show this help, then exit

Routes: POST /sql (Neon's SQL over HTTP), GET /admin/status, GET /admin/workers, GET /admin/archiver,
GET /admin/children/PID/memory, POST /admin/reload, POST /admin/stop?mode=MODE.
`;

function report(e: unknown): void {
  if (isPgError(e)) ereport(e.severity, e.message, { ...e.fields, code: e.code });
  else {ereport("FATAL", e instanceof Error ? e.message : String(e), {
      code: ERRCODE.INTERNAL_ERROR,
    });}
}

/** The PEM texts of --tls-cert and --tls-key, or null for plain HTTP. */
function httpsFiles(
  certFile: string | undefined,
  keyFile: string | undefined,
): { cert: string; key: string } | null {
  if (certFile === undefined && keyFile === undefined) return null;
  if (certFile === undefined || keyFile === undefined) {
    throw new PgError(
      ERRCODE.INVALID_PARAMETER_VALUE,
      "--tls-cert and --tls-key must be given together",
      { severity: "FATAL" },
    );
  }
  const read = (what: string, file: string) => {
    try {
      return readFileSync(file, "utf8");
    } catch (e) {
      throw new PgError(
        ERRCODE.CONFIG_FILE_ERROR,
        `could not load ${what} file "${file}": ${e instanceof Error ? e.message : String(e)}`,
        { severity: "FATAL" },
      );
    }
  };
  return { cert: read("server certificate", certFile), key: read("private key", keyFile) };
}

function portOption(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new PgError(ERRCODE.INVALID_PARAMETER_VALUE, `invalid value for --${name}: "${value}"`, {
      severity: "FATAL",
    });
  }
  return n;
}

/** The `engine` setting as the HTTP adapter's engine: the directory's PGlite, or an upstream. */
function httpEngine(guc: Guc, dataDir: string | null): HttpEngineConfig {
  const setting = guc.getString("engine");
  if (checkEngineSetting(setting)) {
    const modes = poolModesOf(guc);
    // auth_file relative to the data directory, else to where serve-http runs.
    const authFile = authFileReader(() => guc.getString("auth_file"), dataDir ?? process.cwd());
    return poolsTransactions(modes)
      ? { upstream: setting, pool: poolSettingsOf(guc), poolModes: modes, authFile }
      : { upstream: setting, authFile };
  }
  if (dataDir === null) {
    throw new PgError(
      ERRCODE.INVALID_PARAMETER_VALUE,
      `engine "${setting}" needs a data directory`,
      { severity: "FATAL", hint: 'Give -D DATADIR, or --engine with a "postgres://" URL.' },
    );
  }
  return { cluster: dataDir };
}

export async function runServeHttp(args: string[], io: CliIO): Promise<number> {
  const v = parseVerbArgs("serve-http", args, {
    options: {
      pgdata: { type: "string", short: "D" },
      port: { type: "string" },
      host: { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "pg-port": { type: "string" },
      "admin-token": { type: "string" },
      "max-body": { type: "string" },
      engine: { type: "string" },
      c: { type: "string", short: "c", multiple: true },
      help: { type: "boolean", short: "h" },
    },
    usage: SERVE_HTTP_USAGE,
    io,
  });
  if (v.help) {
    io.out(SERVE_HTTP_HELP);
    return 0;
  }
  const startTime = Date.now();
  const proc = { pid: process.pid, backendType: "postmaster", startTime };
  configureLogging(new Guc(), { sink: stderrSink, process: proc });
  let overrides: [string, string][];
  try {
    overrides = settingOverrides(v.c, v.engine === undefined ? [] : [["engine", v.engine]]);
  } catch (e) {
    report(e);
    return 1;
  }
  // An upstream engine needs no data directory: without -D or PGDATA the
  // settings are the built-in ones with -c, and pg_hba.conf the default.
  const argvEngine = overrides.findLast(([name]) => name === "engine")?.[1];
  const pgdata = v.pgdata ?? (io.env.PGDATA === "" ? undefined : io.env.PGDATA);
  const dataDir = pgdata === undefined && argvEngine !== undefined && isUpstreamUrl(argvEngine)
    ? null
    : openDataDirectory(resolve(dataDirFrom("serve-http", v.pgdata, io)));
  const guc = dataDir === null
    ? new Guc()
    : new Guc({ reader: nodeConfigReader, configFile: `${dataDir.path}/postgresql.conf` });
  const hbaFile = dataDir === null ? null : join(dataDir.path, "pg_hba.conf");
  let lock: DataDirLock | undefined;
  const handlers: [PostmasterSignal, () => void][] = [];
  try {
    if (dataDir !== null) {
      dataDir.check();
      guc.set("data_directory", dataDir.path, { source: "override" });
      guc.load();
    }
    applyOverrides(guc, overrides);
    configureLogging(guc, { sink: stderrSink, process: proc });
    const engine = httpEngine(guc, dataDir?.path ?? null);
    const { DEFAULT_HBA, serveHttp } = await import("../http/mod.ts");
    const hba = hbaFile === null ? DEFAULT_HBA : readFileSync(hbaFile, "utf8");
    parseHba(hba, { fileName: hbaFile ?? "pg_hba.conf" }); // refuse to start on a broken file
    const httpPort = portOption("port", v.port, 8080);
    const pgPort = v["pg-port"] === undefined ? null : portOption("pg-port", v["pg-port"], 0);
    const host = v.host ?? "127.0.0.1";
    const tls = httpsFiles(v["tls-cert"], v["tls-key"]);
    lock = dataDir?.lock({
      pid: process.pid,
      port: pgPort ?? httpPort,
      startTime: Math.floor(startTime / 1000),
    });
    const maxBody = v["max-body"] === undefined ? undefined : Number(v["max-body"]);
    if (maxBody !== undefined && !(Number.isInteger(maxBody) && maxBody > 0)) {
      throw new PgError(
        ERRCODE.INVALID_PARAMETER_VALUE,
        `invalid value for --max-body: "${v["max-body"]}"`,
        { severity: "FATAL" },
      );
    }
    const listen: ListenAddress[] = pgPort === null ? [] : [{ family: "tcp", host, port: pgPort }];
    const token = v["admin-token"] ?? io.env.PGTS_ADMIN_TOKEN;
    const heldLock = lock;
    const { NodeSocketNetAdapter } = await import("../adapters/node/nodenet.ts");
    const { server, served } = await serveHttp({
      engine,
      settings: guc,
      hba,
      port: httpPort,
      hostname: host,
      ...(tls === null ? {} : { tls }),
      ...(token === undefined || token === "" ? {} : { adminToken: token }),
      ...(maxBody === undefined ? {} : { maxBodyBytes: maxBody }),
      ...(listen.length === 0 ? {} : { listen, net: new NodeSocketNetAdapter() }),
      ...(heldLock === undefined ? {} : { setStatus: (status) => heldLock.update({ status }) }),
      reload: () => {
        if (hbaFile === null) return {}; // no files to re-read
        guc.reload();
        try {
          const text = readFileSync(hbaFile, "utf8");
          parseHba(text, { fileName: hbaFile });
          return { hba: text };
        } catch (e) {
          ereport("LOG", `${hbaFile} was not reloaded`, {
            detail: e instanceof Error ? e.message : String(e),
          });
          return {};
        }
      },
    });
    for (const sig of ["SIGHUP", "SIGTERM", "SIGINT", "SIGQUIT"] as const) {
      const h = () => server.postmaster.signal(sig);
      process.on(sig, h);
      handlers.push([sig, h]);
    }
    const scheme = tls === null ? "http" : "https";
    ereport("LOG", `serving SQL over HTTP on ${scheme}://${host}:${served.port}/sql`);
    if ("upstream" in engine) {
      ereport("LOG", `in front of the upstream server "${redact(engine.upstream)}"`);
    }
    if (token === undefined || token === "") ereport("LOG", "the admin API is off (no token)");
    const pg = server.postmaster.addresses[0];
    if (pg?.family === "tcp") {
      heldLock?.update({ port: pg.port, listenAddress: pg.host });
      ereport("LOG", `admin console: psql -h ${pg.host} -p ${pg.port} -U postgres pgts`);
    }
    return await server.exited;
  } catch (e) {
    report(e);
    return 1;
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
    lock?.release();
  }
}
