/**
 * The parameter table, pgts's guc_tables.c: every parameter the server knows,
 * with PostgreSQL's name, context, boot value, range and unit where
 * PostgreSQL has the same parameter, and `pgts: true` where pgts adds one.
 *
 * To add a parameter, append a definition here; the parser, `-c`, reload,
 * SHOW formatting and the typed getters pick it up. Deviations from
 * PostgreSQL are commented at the entry. PostgreSQL's parameters not
 * written here follow, read from the engine (tables_postgres.ts).
 */

import { PG_SETTINGS } from "./pg_settings.ts";
import { checkPreloadLibraries } from "./preload.ts";
import { ENGINE_PARAMETERS } from "./tables_engine.ts";
import { POOL_PARAMETERS } from "./tables_pool.ts";
import { withPostgresParameters } from "./tables_postgres.ts";
import { WAL_PARAMETERS } from "./tables_wal.ts";
import { INT_MAX } from "./units.ts";
import { checkTimeZone, MAX_BACKENDS, splitList } from "./values.ts";
import type { CheckFailure, ParamDef } from "./values.ts";

/** The row pg_settings.ts holds for `name`: what the embedded engine's PostgreSQL reports. */
const engineRow = (name: string) => PG_SETTINGS.find((r) => r[0] === name);

/**
 * The PostgreSQL release pgts presents itself as (server_version): the
 * embedded engine's (PGlite's), the one its sessions report.
 */
export const SERVER_VERSION = String(engineRow("server_version")?.[3] ?? "18.6");
export const SERVER_VERSION_NUM = Number(engineRow("server_version_num")?.[3] ?? 180006);

function checkList(value: string): CheckFailure | null {
  return splitList(value) === null ? { detail: "List syntax is invalid." } : null;
}

function checkLogDestination(value: string): CheckFailure | null {
  const items = splitList(value);
  if (items === null) return { detail: "List syntax is invalid." };
  for (const item of items) {
    const word = item.toLowerCase();
    if (word === "stderr") continue;
    if (["csvlog", "jsonlog", "syslog", "eventlog"].includes(word)) {
      return {
        detail: `Unrecognized key word: "${item}".`,
        hint: 'pgts writes only the "stderr" format.',
      };
    }
    return { detail: `Unrecognized key word: "${item}".` };
  }
  return null;
}

function checkEngine(value: string): CheckFailure | null {
  if (value === "pglite" || /^postgres(ql)?:\/\//.test(value)) return null;
  return { hint: 'Use "pglite" or a "postgres://" URL.' };
}

export const PARAMETERS: readonly ParamDef[] = withPostgresParameters([
  // File locations
  {
    name: "data_directory",
    type: "string",
    // PostgreSQL lets postgresql.conf point elsewhere; pgts always runs on
    // the directory given with -D (refused: tables_postgres.ts).
    context: "postmaster",
    boot: "",
    description: "Data directory the server runs on.",
  },
  // Connections and authentication
  {
    name: "listen_addresses",
    type: "string",
    context: "postmaster",
    boot: "localhost",
    check: checkList,
    engine: true,
    description: "Host names or IP addresses to listen on; '*' for all, '' for none.",
  },
  {
    name: "port",
    type: "int",
    context: "postmaster",
    boot: 5432,
    // PostgreSQL's minimum is 1; pgts accepts 0 so that tests can let the
    // kernel pick a free port.
    min: 0,
    max: 65535,
    engine: true,
    description: "TCP port the server listens on.",
  },
  {
    name: "unix_socket_directories",
    type: "string",
    context: "postmaster",
    boot: "/tmp",
    check: checkList,
    engine: true,
    description: "Directories where Unix-domain sockets are created.",
  },
  {
    name: "max_connections",
    type: "int",
    context: "postmaster",
    boot: 100,
    min: 1,
    max: MAX_BACKENDS,
    engine: true,
    description: "Most client connections served at once.",
  },
  {
    name: "max_prepared_transactions",
    type: "int",
    context: "postmaster",
    boot: 0,
    min: 0,
    max: MAX_BACKENDS,
    description:
      "Most transactions prepared for two-phase commit at once (0: PREPARE TRANSACTION is refused); passed to the engine.",
  },
  {
    name: "superuser_reserved_connections",
    type: "int",
    context: "postmaster",
    boot: 3,
    min: 0,
    max: MAX_BACKENDS,
    engine: true,
    description: "Connection slots kept for superusers.",
  },
  {
    name: "reserved_connections",
    type: "int",
    context: "postmaster",
    boot: 0,
    min: 0,
    max: MAX_BACKENDS,
    engine: true,
    description:
      "Connection slots kept for roles with privileges of pg_use_reserved_connections (and superusers), before superuser_reserved_connections.",
  },
  {
    name: "backend_pool_size",
    type: "int",
    context: "postmaster",
    boot: 4,
    min: 0,
    max: 64,
    pgts: true,
    description:
      "Backend processes (or Workers) started ahead of connections and reused after a clean exit (subprocess and worker adapters).",
  },
  {
    name: "authentication_timeout",
    type: "int",
    context: "sighup",
    boot: 60,
    min: 1,
    max: 600,
    unit: "s",
    // pgts acts on it; passed so that SHOW answers it (the engine's after a restart).
    engine: true,
    description: "Longest time a client may take to authenticate.",
  },
  {
    name: "password_encryption",
    type: "enum",
    context: "user",
    boot: "scram-sha-256",
    values: ["md5", "scram-sha-256"],
    engine: true,
    description: "Algorithm used to store new passwords.",
  },
  // SSL (paths are relative to the data directory, as PostgreSQL's are)
  {
    name: "ssl",
    type: "bool",
    context: "sighup",
    boot: false,
    description: "Enables SSL connections.",
  },
  {
    name: "ssl_cert_file",
    type: "string",
    context: "sighup",
    boot: "server.crt",
    description: "Location of the SSL server certificate file.",
  },
  {
    name: "ssl_key_file",
    type: "string",
    context: "sighup",
    boot: "server.key",
    description: "Location of the SSL server private key file.",
  },
  {
    name: "ssl_ca_file",
    type: "string",
    context: "sighup",
    boot: "",
    description: "Location of the SSL certificate authority file (client certificates).",
  },
  {
    name: "ssl_min_protocol_version",
    type: "enum",
    context: "sighup",
    boot: "TLSv1.2",
    values: ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"],
    description: "Sets the minimum SSL/TLS protocol version to use.",
  },
  {
    name: "ssl_max_protocol_version",
    type: "enum",
    context: "sighup",
    boot: "",
    values: ["", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"],
    description: "Sets the maximum SSL/TLS protocol version to use.",
  },
  // Processes
  {
    name: "restart_after_crash",
    type: "bool",
    context: "sighup",
    boot: true,
    description: "Reinitialize the server after a child crashes.",
  },
  {
    name: "max_worker_processes",
    type: "int",
    context: "postmaster",
    boot: 8,
    min: 0,
    max: MAX_BACKENDS,
    description: "Most background workers running at once.",
  },
  {
    name: "shared_preload_libraries",
    type: "string",
    context: "postmaster",
    boot: "",
    check: checkPreloadLibraries,
    description: "Background worker modules loaded at start, as 'module#export' items.",
  },
  {
    name: "bgworker_restart_intensity",
    type: "int",
    context: "sighup",
    boot: 5,
    min: 0,
    max: INT_MAX,
    pgts: true,
    description: "Restarts of one background worker allowed within bgworker_restart_period.",
  },
  {
    name: "bgworker_restart_period",
    type: "int",
    context: "sighup",
    boot: 60,
    min: 1,
    max: INT_MAX,
    unit: "s",
    pgts: true,
    description: "Window in which bgworker_restart_intensity is counted.",
  },
  {
    name: "bgworker_restart_interval",
    type: "int",
    context: "postmaster",
    boot: 60,
    min: -1,
    max: INT_MAX,
    unit: "s",
    pgts: true,
    // PostgreSQL's bgw_restart_time, fixed per worker by its library there.
    description:
      "Wait before restarting a shared_preload_libraries worker that exited abnormally; -1 never restarts.",
  },
  {
    name: "sigkill_children_after",
    type: "int",
    context: "sighup",
    boot: 5,
    min: 1,
    max: 3600,
    unit: "s",
    pgts: true,
    // PostgreSQL's SIGKILL_CHILDREN_AFTER_SECS, a constant there.
    description: "How long after SIGQUIT children still running get SIGKILL.",
  },
  {
    name: "autovacuum",
    type: "bool",
    context: "sighup",
    boot: true,
    description: "Start the autovacuum launcher when its entry is available.",
  },
  {
    name: "cluster_name",
    type: "string",
    context: "postmaster",
    boot: "",
    engine: true,
    description: "Name of the cluster, shown in process titles.",
  },
  // Engine
  {
    name: "engine",
    type: "string",
    context: "postmaster",
    boot: "pglite",
    check: checkEngine,
    pgts: true,
    description: "SQL engine behind the server: 'pglite' or a postgres:// URL.",
  },
  // The upstream pool (engine = 'postgres://...'): tables_pool.ts.
  ...POOL_PARAMETERS,
  {
    name: "engine_placement",
    type: "enum",
    context: "postmaster",
    boot: "worker",
    values: ["worker", "inline"],
    pgts: true,
    description:
      "Where the engine child runs PGlite: a Worker thread (cancels and timeouts act during a statement) or its main thread (fewer thread hops per statement).",
  },
  {
    name: "engine_spin_time",
    type: "int",
    context: "postmaster",
    boot: 200,
    min: 0,
    max: 10000,
    pgts: true,
    description:
      "Microseconds the engine's Worker keeps polling for the next statement before it sleeps (five times as long for the next statement of a session inside a transaction block): a statement after a sleep runs slower (cold caches); 0 sleeps at once.",
  },
  {
    name: "engine_cpu_affinity",
    type: "bool",
    context: "postmaster",
    boot: true,
    pgts: true,
    description:
      "On Linux with 2 to 4 CPUs, keeps the engine's Worker, while it is the only one open, off the first allowed CPU, so that it and the thread that runs the sessions stop landing on one CPU; off leaves it to the kernel.",
  },
  {
    name: "engine_wait_timeout",
    type: "int",
    context: "user",
    boot: 5000,
    min: 0,
    max: INT_MAX,
    unit: "ms",
    pgts: true,
    description: "How long a session waits for the single engine; 0 waits forever.",
  },
  {
    name: "engine_hold_timeout",
    type: "int",
    // Read when the engine starts; a session must not be able to lift it for itself.
    context: "postmaster",
    boot: 2000,
    min: 0,
    max: INT_MAX,
    unit: "ms",
    pgts: true,
    description:
      "Ends a session that holds the single engine idle (in a transaction block), or with its answers unread by its client, this long while another session waits for it; 0 never does.",
  },
  {
    name: "engine_idle_timeout",
    type: "int",
    // Read when the engine child starts.
    context: "postmaster",
    boot: 10000,
    min: 0,
    max: INT_MAX,
    unit: "ms",
    pgts: true,
    description:
      "Closes the engine of a database (other than postgres) that has had no session this long; 0 keeps it open.",
  },
  // Memory, query tuning, client defaults the engine applies: tables_engine.ts.
  ...ENGINE_PARAMETERS,
  // Write-ahead log, archiving, archive recovery, checkpoints: tables_wal.ts.
  ...WAL_PARAMETERS,
  // Statement behaviour
  {
    name: "statement_timeout",
    type: "int",
    context: "user",
    boot: 0,
    min: 0,
    max: INT_MAX,
    unit: "ms",
    engine: true,
    description: "Longest time a statement may run; 0 disables.",
  },
  {
    name: "lock_timeout",
    type: "int",
    context: "user",
    boot: 0,
    min: 0,
    max: INT_MAX,
    unit: "ms",
    engine: true,
    description: "Longest wait for a lock; 0 disables.",
  },
  {
    name: "idle_in_transaction_session_timeout",
    type: "int",
    context: "user",
    boot: 0,
    min: 0,
    max: INT_MAX,
    unit: "ms",
    engine: true,
    description: "Longest idle time inside an open transaction; 0 disables.",
  },
  {
    name: "application_name",
    type: "string",
    context: "user",
    boot: "",
    engine: true,
    description: "Name the client application reports.",
  },
  // Reporting and logging
  {
    name: "log_min_messages",
    type: "enum",
    context: "superuser",
    boot: "warning",
    values: [
      "debug5",
      "debug4",
      "debug3",
      "debug2",
      "debug1",
      "info",
      "notice",
      "warning",
      "error",
      "log",
      "fatal",
      "panic",
    ],
    engine: true,
    description: "Lowest severity written to the server log.",
  },
  {
    name: "log_destination",
    type: "string",
    context: "sighup",
    boot: "stderr",
    check: checkLogDestination,
    description: "Where server log output goes.",
  },
  {
    name: "logging_collector",
    type: "bool",
    context: "postmaster",
    boot: false,
    description: "Run a log collector child that writes stderr output to files.",
  },
  {
    name: "log_directory",
    type: "string",
    context: "sighup",
    boot: "log",
    description: "Directory for log files, absolute or relative to the data directory.",
  },
  {
    name: "log_filename",
    type: "string",
    context: "sighup",
    boot: "postgresql-%Y-%m-%d_%H%M%S.log",
    description: "Log file name pattern, with strftime escapes.",
  },
  {
    name: "log_rotation_age",
    type: "int",
    context: "sighup",
    boot: 1440,
    min: 0,
    max: Math.floor(INT_MAX / 60),
    unit: "min",
    description: "Start a new log file after this long; 0 disables.",
  },
  {
    name: "log_rotation_size",
    type: "int",
    context: "sighup",
    boot: 10240,
    min: 0,
    max: Math.floor(INT_MAX / 1024),
    unit: "kB",
    description: "Start a new log file once the current one is this big; 0 disables.",
  },
  {
    name: "log_truncate_on_rotation",
    type: "bool",
    context: "sighup",
    boot: false,
    description: "Truncate an existing file of the same name on time-based rotation.",
  },
  {
    name: "log_line_prefix",
    type: "string",
    context: "sighup",
    boot: "%m [%p] ",
    engine: true,
    description: "printf-style prefix of every log line.",
  },
  {
    name: "log_timezone",
    type: "string",
    context: "sighup",
    boot: "GMT",
    check: checkTimeZone,
    // Given to the engine too, so that SHOW and pg_settings tell the zone
    // of the log's lines (PGlite's own is UTC).
    engine: true,
    description: "Time zone of timestamps in the log.",
  },
  {
    name: "log_connections",
    type: "bool",
    context: "superuser-backend",
    boot: false,
    engine: true,
    description: "Log each successful connection.",
  },
  {
    name: "log_disconnections",
    type: "bool",
    context: "superuser-backend",
    boot: false,
    engine: true,
    description: "Log the end of each session with its duration.",
  },
  // Preset
  {
    name: "server_version",
    type: "string",
    context: "internal",
    boot: SERVER_VERSION,
    description: "PostgreSQL version the server presents.",
  },
  {
    name: "server_version_num",
    type: "int",
    context: "internal",
    boot: SERVER_VERSION_NUM,
    min: SERVER_VERSION_NUM,
    max: SERVER_VERSION_NUM,
    description: "PostgreSQL version the server presents, as a number.",
  },
]);
