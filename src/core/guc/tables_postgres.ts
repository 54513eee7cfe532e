/**
 * Every parameter of PostgreSQL's that the engine knows, as pgts's
 * definitions: the rows of pg_settings.ts (generated from PGlite's
 * pg_settings by scripts/engine-parameters.ts) turned into ParamDefs, so
 * that a postgresql.conf written for PostgreSQL, `-c`, and a login's
 * startup options are checked as PostgreSQL checks them (type, range,
 * units, enum values, context) and each one set reaches the engine as a
 * start parameter (`engine: true`).
 *
 * The hand-written tables (tables.ts and the tables it spreads in) keep
 * priority: a name defined there is taken from there. Each parameter the
 * engine applies has PostgreSQL's context: one a reload may change is
 * changed in the engine's backend too (the engine child's SIGHUP,
 * configreload.ts), and a session SETs its own in the engine. A
 * hand-written definition whose context is pgts's own (not PostgreSQL's)
 * gets PostgreSQL's as `sessionContext`, for the check of a login's
 * options.
 *
 * It also holds what pgts refuses although PostgreSQL accepts it
 * (`REFUSED`), with the reason as the hint, and the checks of string
 * parameters whose bad value keeps the engine from starting: PGlite fails
 * to start without saying why, so a value it would refuse at start must be
 * refused here first.
 *
 * Tried once each (an engine opened with the value, then pgts's own start
 * work and a session's DDL): the engine did not start with hba_file,
 * config_file or data_directory set, local_ or session_preload_libraries
 * naming a library, max_stack_depth = 8MB, search_path = 'a,,b', an unknown
 * timezone_abbreviations file, unknown words in
 * restrict_nonsystem_relation_kind or createrole_self_grant,
 * client_min_messages = debug3 to debug5, client_encoding = LATIN1, a bad
 * DateStyle or TimeZone, io_method = worker (it hangs), wal_sync_method =
 * open_sync, or default_transaction_read_only = on (pgts's own writes fail).
 * It started, and served, with shared_memory_type = sysv, debug_io_direct,
 * huge_pages = on, wal_level = minimal or logical (with archive_mode too:
 * hence the check of that pair; but with logical, the first
 * pg_logical_slot_get_changes or _peek_ of any kind stops answering, and
 * the engine with it), jit_provider, unix_socket_group,
 * reserved_connections, external_pid_file, track_commit_timestamp,
 * hot_standby = off, wal_sync_method = open_datasync or fsync,
 * recovery_prefetch = on, ssl_ciphers, primary_conninfo, io_workers,
 * nonexistent default_table_access_method (then every CREATE TABLE fails,
 * as in PostgreSQL), default_tablespace, temp_tablespaces,
 * default_text_search_config or lc_* values, dynamic_library_path,
 * session_replication_role = replica, allow_system_table_mods = off,
 * wal_consistency_checking = all, ignore_system_indexes, post_auth_delay,
 * event_triggers = off, wal_compression, summarize_wal, full_page_writes =
 * off, data_sync_retry, exit_on_error =
 * on (ignored at start; an error in a session would end the backend).
 */

import { PG_SETTINGS, type PgSettingRow } from "./pg_settings.ts";
import type { CheckFailure, GucValue, ParamDef, Refusal } from "./values.ts";
import { splitList } from "./values.ts";

/**
 * The engine's max_stack_depth, in kB, and the most it may be set to: the
 * recursion that the JavaScript engine's native stack holds below it, as
 * PostgreSQL bounds max_stack_depth by the platform's stack (`ulimit -s`).
 * PL/pgSQL recursion (a level that loops over a query calling the next)
 * ran a Worker's native stack out at 512kB under Bun (JavaScriptCore) and
 * at 224kB under Deno (V8), past what the engine can raise as 54001 (the
 * backend every session shares ended: src/engines/pglite/stackguard.ts).
 */
export const ENGINE_MAX_STACK_DEPTH_KB = (globalThis as { Deno?: unknown }).Deno === undefined
  ? 256
  : 128;

/** A refusal of every value but the boot value, or but those listed. */
function unlessDefault(
  hint: string,
  allowed?: readonly GucValue[],
): (boot: GucValue) => (value: GucValue) => Refusal | null {
  return (boot) => (value) =>
    (allowed === undefined ? value === boot : allowed.includes(value)) ? null : { hint };
}

const always = (hint: string) => () => (): Refusal => ({ hint, whole: true });

const ENGINE_FILES =
  "The engine's configuration files are its own; pgts reads DIR/postgresql.conf and DIR/pg_hba.conf of the directory given with -D.";
const C_LIBRARIES =
  "The engine loads no C libraries of its own: its extensions come with it (CREATE EXTENSION), and pgts's shared_preload_libraries names JavaScript modules.";
const PGTS_TLS =
  "pgts terminates TLS itself and applies only ssl, ssl_cert_file, ssl_key_file, ssl_ca_file, ssl_min_protocol_version and ssl_max_protocol_version; this one would be ignored.";

/**
 * What pgts refuses although PostgreSQL accepts it, by name: a function of
 * the boot value giving the refusal of a value. The hint is the reason.
 */
const REFUSED: Readonly<
  Record<string, (boot: GucValue) => (value: GucValue) => Refusal | null>
> = {
  data_directory: always(
    "pgts runs on the directory given with -D (PGDATA); the engine's own directory is internal to it.",
  ),
  config_file: always(ENGINE_FILES),
  hba_file: always(ENGINE_FILES),
  ident_file: always(ENGINE_FILES),
  external_pid_file: always(
    "pgts writes its process ID only to DIR/postmaster.pid; the engine runs inside pgts and writes none.",
  ),
  exit_on_error: unlessDefault(
    "Every session shares the engine's one backend: an error ending it would end every session (and the engine ignores it at start).",
    [false],
  ),
  session_preload_libraries: unlessDefault(C_LIBRARIES, [""]),
  local_preload_libraries: unlessDefault(C_LIBRARIES, [""]),
  dynamic_library_path: unlessDefault(C_LIBRARIES, ["$libdir"]),
  extension_control_path: unlessDefault(C_LIBRARIES, ["$system"]),
  wal_sync_method: unlessDefault(
    "The engine's file system cannot open a file with O_SYNC: its first WAL write fails and the engine stops. fdatasync, the default, is the one pgts's group commit takes off the engine's thread.",
    ["fdatasync", "fsync", "open_datasync"],
  ),
  vacuum_cost_delay: unlessDefault(
    "The engine's one backend serves every session: a cost-based vacuum delay would hold them all while it naps, and its nap ends the backend. A session's SET is refused inside the engine too.",
    [0],
  ),
  wal_level: unlessDefault(
    "The engine cannot decode its WAL: its logical decoding functions never return and stop every session. Logical replication slots need wal_level = logical, so they cannot be created.",
    ["minimal", "replica"],
  ),
  io_method: unlessDefault(
    "The engine is one process and starts no I/O workers; it keeps sync (with worker it does not start).",
    ["sync"],
  ),
  max_stack_depth: () => (value) =>
    (value as number) <= ENGINE_MAX_STACK_DEPTH_KB ? null : {
      hint:
        `Recursion deeper than ${ENGINE_MAX_STACK_DEPTH_KB}kB allows can exhaust the JavaScript engine's native stack, which ends the backend every session shares (a crash of the cluster). A session's SET is refused inside the engine too.`,
    },
  default_transaction_read_only: () => (value) =>
    value === false ? null : {
      hint:
        "pgts's own work on the engine (its copies of the catalogs of roles and databases) writes, and runs with the server's defaults; set it for a role or database (ALTER ROLE ... SET) or a session instead.",
      serverOnly: true,
    },
  client_min_messages: () => (value) =>
    ["debug5", "debug4", "debug3"].includes(value as string)
      ? {
        hint:
          "The engine sends such messages while it starts, before any session can take them, and then fails to start; a session may set it.",
        serverOnly: true,
      }
      : null,
  ssl_ciphers: unlessDefault(PGTS_TLS),
  ssl_crl_dir: unlessDefault(PGTS_TLS),
  ssl_crl_file: unlessDefault(PGTS_TLS),
  ssl_dh_params_file: unlessDefault(PGTS_TLS),
  ssl_groups: unlessDefault(PGTS_TLS),
  ssl_passphrase_command: unlessDefault(PGTS_TLS),
  ssl_passphrase_command_supports_reload: unlessDefault(PGTS_TLS),
  ssl_prefer_server_ciphers: unlessDefault(PGTS_TLS),
  ssl_tls13_ciphers: unlessDefault(PGTS_TLS),
};

/** Comma-separated words, each one of `words` (case-insensitive); "" is none. */
function checkWordList(words: readonly string[]): (value: string) => CheckFailure | null {
  return (value) => {
    const items = splitList(value);
    if (items === null) return { detail: "List syntax is invalid." };
    const bad = items.find((i) => !words.includes(i.toLowerCase()));
    return bad === undefined ? null : { detail: `Unrecognized key word: "${bad}".` };
  };
}

/** PGlite's share/timezonesets files that a value may name. */
const TIMEZONE_SETS = ["Default", "Australia", "India"];

/**
 * Checks of string parameters whose bad value the engine refuses when it
 * starts (it then fails without a word): the syntax or the words PostgreSQL's
 * check hooks take.
 */
const STRING_CHECKS: Readonly<Record<string, (value: string) => CheckFailure | null>> = {
  search_path: (value) => splitList(value) === null ? { detail: "List syntax is invalid." } : null,
  temp_tablespaces: (value) =>
    splitList(value) === null ? { detail: "List syntax is invalid." } : null,
  timezone_abbreviations: (value) =>
    value === "" || TIMEZONE_SETS.some((s) => s.toLowerCase() === value.toLowerCase()) ? null : {
      hint: `The engine has the time zone abbreviation files ${TIMEZONE_SETS.join(", ")}.`,
    },
  restrict_nonsystem_relation_kind: checkWordList(["view", "foreign-table"]),
  createrole_self_grant: checkWordList(["set", "inherit"]),
};

function describe(pgContext: string): string {
  return `PostgreSQL's parameter (${pgContext} context there), applied by the engine.`;
}

/** One generated row as pgts's definition (see the module's comment for the context). */
function fromRow(row: PgSettingRow): ParamDef {
  const [name, pgContext] = row;
  const base = {
    name,
    context: pgContext,
    ...(pgContext === "internal" ? {} : { engine: true }),
    generated: true,
    description: describe(pgContext),
  } as const;
  switch (row[2]) {
    case "bool":
      return { ...base, type: "bool", boot: row[3] };
    case "string": {
      const check = STRING_CHECKS[name];
      return { ...base, type: "string", boot: row[3], ...(check ? { check } : {}) };
    }
    case "enum":
      return { ...base, type: "enum", boot: row[3], values: row[4] };
    case "int":
    case "real": {
      const [, , type, boot, min, max, unit] = row;
      return { ...base, type, boot, min, max, ...(unit !== undefined ? { unit } : {}) };
    }
    default: {
      const never: never = row;
      throw new TypeError(`Unknown parameter row ${String(never)}`);
    }
  }
}

/**
 * The hand-written definitions, each given PostgreSQL's context where it
 * differs and pgts's refusal, followed by the engine's other parameters.
 */
export function withPostgresParameters(handWritten: readonly ParamDef[]): ParamDef[] {
  const pgContexts = new Map(PG_SETTINGS.map((r) => [r[0].toLowerCase(), r[1]]));
  const seen = new Set<string>();
  const out: ParamDef[] = [];
  const refusing = (def: ParamDef): ParamDef => {
    const refuse = REFUSED[def.name.toLowerCase()];
    return refuse === undefined || def.refuse !== undefined
      ? def
      : { ...def, refuse: refuse(def.boot) };
  };
  for (const def of handWritten) {
    const key = def.name.toLowerCase();
    seen.add(key);
    const pgContext = pgContexts.get(key);
    // An engine parameter written postmaster for the engine's sake
    // (tables_engine.ts) takes PostgreSQL's context: a reload reaches the engine.
    const reloadable = def.engine === true && def.context === "postmaster" &&
        pgContext !== undefined && pgContext !== "postmaster" && pgContext !== "internal"
      ? { ...def, context: pgContext }
      : def;
    const session = pgContext !== undefined && pgContext !== reloadable.context &&
        reloadable.sessionContext === undefined
      ? { ...reloadable, sessionContext: pgContext }
      : reloadable;
    out.push(refusing(session));
  }
  for (const row of PG_SETTINGS) {
    if (!seen.has(row[0].toLowerCase())) out.push(refusing(fromRow(row)));
  }
  return out;
}
