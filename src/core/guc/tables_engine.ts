/**
 * PostgreSQL's parameters that only the engine acts on, guc_tables.c's
 * groups RESOURCES_MEM, QUERY_TUNING and CLIENT_CONN_LOCALE: shared memory
 * and work memory, the planner's costs, the session defaults a PostgreSQL
 * initdb writes into postgresql.conf (DateStyle, TimeZone, lc_*). pgts
 * knows them so that a postgresql.conf copied from a PostgreSQL server, or
 * `-c`, is accepted; each one set (`engine: true`) is passed to PGlite's
 * Postgres as a start parameter, which answers SHOW, pg_settings and SET
 * for it as PostgreSQL does. Part of the parameter table (tables.ts spreads
 * them in at their place).
 *
 * PGlite reads its start parameters only when the engine opens; the
 * contexts written here are postmaster, and tables_postgres.ts gives each
 * one PostgreSQL's own context: one that a reload (sighup) or a session
 * (user) may change is applied in the engine's backend at a reload
 * (configreload.ts), and a session SETs its own there. A boot value is what the engine uses when pgts passes nothing
 * (PostgreSQL's, or the engine's own postgresql.conf's where initdb wrote
 * one). Values the engine would refuse must be refused here: PGlite does
 * not say why it failed to start.
 */

import { ENGINE_MAX_STACK_DEPTH_KB } from "./tables_postgres.ts";
import { INT_MAX } from "./units.ts";
import type { CheckFailure, ParamDef } from "./values.ts";
import { checkTimeZone, splitList } from "./values.ts";

/** PGlite is 32-bit WebAssembly: PostgreSQL's MAX_KILOBYTES there is INT_MAX / 1024. */
const MAX_KILOBYTES = Math.floor(INT_MAX / 1024);

/** What the max_parallel_* parameters say of themselves: known, and kept out of the engine. */
const NO_PARALLEL_WORKERS =
  "Accepted from PostgreSQL's configuration files; not passed: the engine runs no parallel workers (it keeps 0).";

const DATESTYLE_WORDS = new Set([
  "iso",
  "sql",
  "postgres",
  "german",
  "ymd",
  "dmy",
  "euro",
  "european",
  "mdy",
  "us",
  "noneuro",
  "noneuropean",
  "default",
]);

/** PostgreSQL's check_datestyle, as far as the words and their conflicts go. */
function checkDateStyle(value: string): CheckFailure | null {
  const items = splitList(value);
  if (items === null) return { detail: "List syntax is invalid." };
  let styles = 0;
  let orders = 0;
  for (const item of items) {
    const word = item.toLowerCase();
    if (!DATESTYLE_WORDS.has(word)) return { detail: `Unrecognized key word: "${item}".` };
    if (["iso", "sql", "postgres", "german"].includes(word)) styles++;
    else if (word !== "default") orders++;
  }
  if (styles > 1 || orders > 1) return { detail: 'Conflicting "datestyle" specifications.' };
  return null;
}

/**
 * A POSIX time zone specification ("GMT+3", "<+03>-03", "EST5EDT,M3.2.0,M11.1.0"),
 * which PostgreSQL's TimeZone takes besides the IANA names.
 */
const POSIX_TZ =
  /^(?:[A-Za-z]{3,}|<[A-Za-z0-9+-]+>)[+-]?\d{1,2}(?::\d{2}){0,2}(?:(?:[A-Za-z]{3,}|<[A-Za-z0-9+-]+>)(?:[+-]?\d{1,2}(?::\d{2}){0,2})?(?:,.+)?)?$/;

/** TimeZone: a zone Intl knows, or a POSIX specification (the log does not use this one). */
function checkSessionTimeZone(value: string): CheckFailure | null {
  return POSIX_TZ.test(value) ? null : checkTimeZone(value);
}

export const ENGINE_PARAMETERS: readonly ParamDef[] = [
  // Resource usage: memory
  {
    name: "shared_buffers",
    type: "int",
    context: "postmaster",
    boot: 16384,
    min: 16,
    max: 1073741823,
    unit: "8kB",
    engine: true,
    description:
      "Shared memory buffers of the engine (of each database's engine); all of it is touched when the engine starts.",
  },
  {
    name: "huge_pages",
    type: "enum",
    context: "postmaster",
    boot: "try",
    values: ["off", "on", "try"],
    engine: true,
    // PGlite's shared memory is part of its WebAssembly heap: no huge pages
    // are asked of the kernel whatever the value.
    description:
      "Use of huge pages; passed to the engine, whose shared memory (WebAssembly memory) never uses them.",
  },
  {
    name: "work_mem",
    type: "int",
    // PostgreSQL's is user; PGlite reads it only when the engine starts.
    context: "postmaster",
    boot: 4096,
    min: 64,
    max: MAX_KILOBYTES,
    unit: "kB",
    engine: true,
    description:
      "Memory a sort or hash may use before it spills to disk: the sessions' default (a session may SET its own).",
  },
  {
    name: "maintenance_work_mem",
    type: "int",
    // PostgreSQL's is user; PGlite reads it only when the engine starts.
    context: "postmaster",
    boot: 65536,
    min: 64,
    max: MAX_KILOBYTES,
    unit: "kB",
    engine: true,
    description:
      "Memory of VACUUM, CREATE INDEX and the like: the sessions' default (a session may SET its own).",
  },
  {
    name: "max_stack_depth",
    type: "int",
    // PostgreSQL's is superuser; PGlite reads it only when the engine starts.
    context: "postmaster",
    // The engine's unless set (src/engines/pglite/stackguard.ts); more is refused (tables_postgres.ts).
    boot: ENGINE_MAX_STACK_DEPTH_KB,
    min: 100,
    max: MAX_KILOBYTES,
    unit: "kB",
    engine: true,
    description:
      "Deepest recursion a statement may take, in stack: the sessions' default (a superuser may SET more, at the risk of the crash stackguard.ts describes).",
  },
  {
    name: "dynamic_shared_memory_type",
    type: "enum",
    context: "postmaster",
    boot: "posix",
    values: ["posix", "sysv", "mmap"],
    engine: true,
    description: "Dynamic shared memory implementation; passed to the engine.",
  },
  // Query tuning
  {
    name: "effective_cache_size",
    type: "int",
    // PostgreSQL's is user; PGlite reads it only when the engine starts.
    context: "postmaster",
    boot: 524288,
    min: 1,
    max: INT_MAX,
    unit: "8kB",
    engine: true,
    description:
      "The planner's assumption about the size of the data caches: the sessions' default.",
  },
  {
    name: "random_page_cost",
    type: "real",
    // PostgreSQL's is user; PGlite reads it only when the engine starts.
    context: "postmaster",
    boot: 4,
    min: 0,
    max: Number.MAX_VALUE,
    engine: true,
    description: "The planner's cost of a page fetched out of order: the sessions' default.",
  },
  {
    name: "effective_io_concurrency",
    type: "int",
    // PostgreSQL's is user; PGlite reads it only when the engine starts.
    context: "postmaster",
    boot: 16,
    min: 0,
    max: 1000,
    engine: true,
    description: "Concurrent disk reads the planner may count on: the sessions' default.",
  },
  {
    name: "default_statistics_target",
    type: "int",
    // PostgreSQL's is user; PGlite reads it only when the engine starts.
    context: "postmaster",
    boot: 100,
    min: 1,
    max: 10000,
    engine: true,
    description:
      "Statistics target of columns without one of their own (ANALYZE): the sessions' default.",
  },
  // The engine is one process: PGlite starts it with no parallel workers
  // (max_worker_processes = 0 and these 0), so a value here would only make
  // the planner plan workers that never start. Accepted, not passed.
  {
    name: "max_parallel_workers_per_gather",
    type: "int",
    context: "postmaster",
    boot: 2,
    min: 0,
    max: 1024,
    description: NO_PARALLEL_WORKERS,
  },
  {
    name: "max_parallel_workers",
    type: "int",
    context: "postmaster",
    boot: 8,
    min: 0,
    max: 1024,
    description: NO_PARALLEL_WORKERS,
  },
  {
    name: "max_parallel_maintenance_workers",
    type: "int",
    context: "postmaster",
    boot: 2,
    min: 0,
    max: 1024,
    description: NO_PARALLEL_WORKERS,
  },
  // Client connection defaults: what PostgreSQL's initdb writes into postgresql.conf
  {
    name: "DateStyle",
    type: "string",
    // PostgreSQL's is user; PGlite reads it only when the engine starts.
    context: "postmaster",
    boot: "ISO, MDY",
    check: checkDateStyle,
    engine: true,
    description: "Display format of dates and times: the sessions' default.",
  },
  {
    name: "TimeZone",
    type: "string",
    // PostgreSQL's is user; PGlite reads it only when the engine starts.
    context: "postmaster",
    // The engine's own postgresql.conf (PGlite's initdb) says UTC.
    boot: "UTC",
    check: checkSessionTimeZone,
    engine: true,
    description: "Time zone of time stamps shown and read: the sessions' default.",
  },
  {
    name: "lc_messages",
    type: "string",
    // PostgreSQL's is superuser; PGlite reads it only when the engine starts.
    context: "postmaster",
    boot: "C",
    engine: true,
    description:
      "Language of messages: the sessions' default (the engine's messages are in English whatever the value).",
  },
  {
    name: "lc_monetary",
    type: "string",
    // PostgreSQL's is user; PGlite reads it only when the engine starts.
    context: "postmaster",
    boot: "C",
    engine: true,
    description: "Locale of monetary amounts: the sessions' default.",
  },
  {
    name: "lc_numeric",
    type: "string",
    // PostgreSQL's is user; PGlite reads it only when the engine starts.
    context: "postmaster",
    boot: "C",
    engine: true,
    description: "Locale of numbers: the sessions' default.",
  },
  {
    name: "lc_time",
    type: "string",
    // PostgreSQL's is user; PGlite reads it only when the engine starts.
    context: "postmaster",
    boot: "C",
    engine: true,
    description: "Locale of dates and times: the sessions' default.",
  },
  {
    name: "default_text_search_config",
    type: "string",
    // PostgreSQL's is user; PGlite reads it only when the engine starts.
    context: "postmaster",
    // The engine's own postgresql.conf (PGlite's initdb) says english.
    boot: "pg_catalog.english",
    engine: true,
    description: "Text search configuration of to_tsvector and the like: the sessions' default.",
  },
];
