/**
 * `pgts serve-http`: runs the HTTP adapter on a data directory, in the
 * foreground. Like `pgts start` it checks the directory, loads
 * postgresql.conf (with `-c` overrides) and pg_hba.conf, and takes
 * postmaster.pid, since the engine must be the directory's only opener;
 * then every HTTP request on `--port` is a backend run (Neon's SQL over
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
import { ENGINE_DIR } from "../core/datadir.ts";
import type { DataDirLock } from "../core/datadir.ts";
import { ereport, ERRCODE, isPgError, PgError } from "../core/elog.ts";
import { Guc } from "../core/guc/guc.ts";
import { configureLogging } from "../core/log.ts";
import type { ListenAddress } from "../core/postmaster/launch.ts";
import type { PostmasterSignal } from "../core/postmaster/pmstate.ts";
import { nodeConfigReader } from "../adapters/shared/config-reader.ts";
import { openDataDirectory } from "../adapters/shared/datadir.ts";
import { stderrSink } from "../adapters/shared/logfiles.ts";
import { type CliIO, dataDirFrom, parseVerbArgs, PROGNAME } from "./args.ts";

export const SERVE_HTTP_USAGE = `${PROGNAME} serve-http -D DATADIR [--port PORT] [--host HOST] ` +
  "[--pg-port PORT] [--admin-token TOKEN] [--max-body BYTES] [-c NAME=VALUE]...";

export const SERVE_HTTP_HELP =
  `${PROGNAME} serve-http serves a data directory over HTTP, one backend run per request.

Usage:
  ${SERVE_HTTP_USAGE}

Options:
  -D, --pgdata=DATADIR      location of the database storage area (default: $PGDATA)
      --port=PORT           HTTP port (default 8080; 0 lets the kernel pick)
      --host=HOST           HTTP address to listen on (default 127.0.0.1)
      --pg-port=PORT        also accept PostgreSQL-protocol clients (psql) on this port
      --admin-token=TOKEN   turn on the admin API (default: $PGTS_ADMIN_TOKEN)
      --max-body=BYTES      largest request body accepted (default 10485760)
  -c NAME=VALUE             set a configuration parameter, overriding postgresql.conf
  -h, --help                show this help, then exit

Routes: POST /sql (Neon's SQL over HTTP), GET /admin/status, GET /admin/workers,
GET /admin/children/PID/memory, POST /admin/reload, POST /admin/stop?mode=MODE.
`;

function report(e: unknown): void {
  if (isPgError(e)) ereport(e.severity, e.message, { ...e.fields, code: e.code });
  else {ereport("FATAL", e instanceof Error ? e.message : String(e), {
      code: ERRCODE.INTERNAL_ERROR,
    });}
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

export async function runServeHttp(args: string[], io: CliIO): Promise<number> {
  const v = parseVerbArgs("serve-http", args, {
    options: {
      pgdata: { type: "string", short: "D" },
      port: { type: "string" },
      host: { type: "string" },
      "pg-port": { type: "string" },
      "admin-token": { type: "string" },
      "max-body": { type: "string" },
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
  const dataDirPath = resolve(dataDirFrom("serve-http", v.pgdata, io));
  const startTime = Date.now();
  const proc = { pid: process.pid, backendType: "postmaster", startTime };
  configureLogging(new Guc(), { sink: stderrSink, process: proc });
  const dataDir = openDataDirectory(dataDirPath);
  const guc = new Guc({ reader: nodeConfigReader, configFile: `${dataDir.path}/postgresql.conf` });
  const hbaFile = join(dataDir.path, "pg_hba.conf");
  let lock: DataDirLock | undefined;
  const handlers: [PostmasterSignal, () => void][] = [];
  try {
    dataDir.check();
    guc.set("data_directory", dataDir.path, { source: "override" });
    guc.load();
    for (const item of v.c ?? []) {
      const eq = item.indexOf("=");
      if (eq < 0) {
        throw new PgError(ERRCODE.SYNTAX_ERROR, `-c ${item} requires a value`, {
          severity: "FATAL",
        });
      }
      guc.set(item.slice(0, eq).replace(/-/g, "_"), item.slice(eq + 1), { source: "argv" });
    }
    configureLogging(guc, { sink: stderrSink, process: proc });
    const hba = readFileSync(hbaFile, "utf8");
    parseHba(hba, { fileName: hbaFile }); // refuse to start on a broken file
    const httpPort = portOption("port", v.port, 8080);
    const pgPort = v["pg-port"] === undefined ? null : portOption("pg-port", v["pg-port"], 0);
    const host = v.host ?? "127.0.0.1";
    lock = dataDir.lock({
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
    const { serveHttp } = await import("../adapters/http/mod.ts");
    const { NodeSocketNetAdapter } = await import("../adapters/shared/nodenet.ts");
    const { server, served } = await serveHttp({
      engine: { dataDir: join(dataDir.path, ENGINE_DIR) },
      settings: guc,
      hba,
      port: httpPort,
      hostname: host,
      ...(token === undefined || token === "" ? {} : { adminToken: token }),
      ...(maxBody === undefined ? {} : { maxBodyBytes: maxBody }),
      ...(listen.length === 0 ? {} : { listen, net: new NodeSocketNetAdapter() }),
      setStatus: (status) => heldLock.update({ status }),
      reload: () => {
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
    ereport("LOG", `serving SQL over HTTP on http://${host}:${served.port}/sql`);
    if (token === undefined || token === "") ereport("LOG", "the admin API is off (no token)");
    const pg = server.postmaster.addresses[0];
    if (pg?.family === "tcp") {
      heldLock.update({ port: pg.port, listenAddress: pg.host });
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
