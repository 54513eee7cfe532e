/**
 * The parameters of the write-ahead log, PostgreSQL's guc_tables.c groups
 * WAL_SETTINGS, WAL_ARCHIVING, WAL_ARCHIVE_RECOVERY, WAL_RECOVERY_TARGET and
 * WAL_CHECKPOINTS: fsync and synchronous_commit, archive_mode and the
 * archiver's command or library, the commands and targets of archive
 * recovery (recovery.signal), the WAL writer's delay, the checkpoints'
 * interval and size. Part of the parameter table (tables.ts spreads them in
 * at their place); the engine child hands them to PGlite or acts on them
 * itself (src/engines/pglite/recovery.ts, src/server/archiver.ts); those
 * marked `engine: true` (wal_buffers, max_wal_size...) are passed to PGlite
 * when set, as tables_engine.ts's are.
 */

import type { ParamDef } from "./values.ts";

export const WAL_PARAMETERS: readonly ParamDef[] = [
  // Write-ahead log
  {
    name: "fsync",
    type: "bool",
    // PostgreSQL's is sighup; PGlite reads it only when the engine starts.
    context: "postmaster",
    boot: true,
    description:
      "Flush the engine's WAL and data files to disk (a memory:// cluster never does); off can lose commits in an OS crash or power loss.",
  },
  {
    name: "synchronous_commit",
    type: "enum",
    context: "user",
    boot: "on",
    values: ["local", "remote_write", "remote_apply", "on", "off"],
    // The engine's default; a session's SET or options -c go to the engine,
    // which implements it (off: a commit is answered before its WAL is flushed).
    description: "Wait for a commit's WAL to be flushed to disk before answering it.",
  },
  {
    name: "wal_buffers",
    type: "int",
    context: "postmaster",
    boot: -1,
    min: -1,
    max: 262143,
    unit: "8kB",
    engine: true,
    description:
      "Shared memory for WAL not yet written; -1 sizes it from shared_buffers. Passed to the engine.",
  },
  {
    name: "archive_mode",
    type: "enum",
    context: "postmaster",
    boot: "off",
    values: ["always", "on", "off"],
    // The engine gets wal_level = replica with it, so that PGlite marks
    // each completed segment .ready; the archiver child archives them.
    description:
      "Archive each completed WAL segment with archive_command or archive_library (the archiver process).",
  },
  {
    name: "archive_command",
    type: "string",
    context: "sighup",
    boot: "",
    description:
      "Shell command that archives a WAL segment: %p is its path (relative to the cluster), %f its file name; success only on exit 0.",
  },
  {
    name: "archive_library",
    type: "string",
    context: "sighup",
    boot: "",
    description:
      "Module that archives instead of archive_command: 'module.ts#export', a function (path, fileName) returning true when the segment is safely archived.",
  },
  {
    name: "archive_timeout",
    type: "int",
    // PostgreSQL's is sighup; the engine child reads it when it starts.
    context: "postmaster",
    boot: 0,
    min: 0,
    max: 1073741823,
    unit: "s",
    description:
      "Switches to a new WAL segment this often when WAL was written, so that it is archived; 0 never does.",
  },
  // Archive recovery (recovery.signal): passed to the engine of "postgres",
  // which runs them (src/engines/pglite/recovery.ts).
  {
    name: "restore_command",
    type: "string",
    context: "postmaster",
    boot: "",
    description:
      "Shell command that fetches an archived WAL segment during archive recovery: %f its file name, %p where to put it (relative to the cluster).",
  },
  {
    name: "archive_cleanup_command",
    type: "string",
    context: "postmaster",
    boot: "",
    description:
      "Shell command run at every restartpoint of a recovery (%r: the oldest segment still needed).",
  },
  {
    name: "recovery_end_command",
    type: "string",
    context: "postmaster",
    boot: "",
    description: "Shell command run once at the end of archive recovery.",
  },
  {
    name: "recovery_target",
    type: "string",
    context: "postmaster",
    boot: "",
    description: "'immediate': end recovery as soon as a consistent state is reached.",
  },
  {
    name: "recovery_target_name",
    type: "string",
    context: "postmaster",
    boot: "",
    description: "Restore point (pg_create_restore_point) at which archive recovery stops.",
  },
  {
    name: "recovery_target_time",
    type: "string",
    context: "postmaster",
    boot: "",
    description: "Time stamp up to which archive recovery replays.",
  },
  {
    name: "recovery_target_xid",
    type: "string",
    context: "postmaster",
    boot: "",
    description: "Transaction ID up to which archive recovery replays.",
  },
  {
    name: "recovery_target_lsn",
    type: "string",
    context: "postmaster",
    boot: "",
    description: "WAL location up to which archive recovery replays.",
  },
  {
    name: "recovery_target_inclusive",
    type: "bool",
    context: "postmaster",
    boot: true,
    description: "Stop just after the recovery target (on) or just before it (off).",
  },
  {
    name: "recovery_target_timeline",
    type: "string",
    context: "postmaster",
    boot: "latest",
    description: "Timeline to recover into: 'current', 'latest' or a number.",
  },
  {
    name: "recovery_target_action",
    type: "enum",
    context: "postmaster",
    boot: "pause",
    values: ["pause", "promote", "shutdown"],
    description:
      "What to do when the recovery target is reached; pgts has no hot standby, so pause acts as shutdown, as in PostgreSQL with hot_standby = off.",
  },
  {
    name: "wal_writer_delay",
    type: "int",
    // PostgreSQL's is sighup; the engine reads it when it starts.
    context: "postmaster",
    boot: 200,
    min: 1,
    max: 10000,
    unit: "ms",
    description:
      "How often the engine flushes the WAL of asynchronous commits (synchronous_commit = off) to disk.",
  },
  {
    name: "checkpoint_timeout",
    type: "int",
    context: "sighup",
    boot: 300,
    min: 30,
    max: 86400,
    unit: "s",
    // pgts's checkpointer acts on it; passed so that SHOW answers it (a
    // reload reaches the checkpointer, the engine's SHOW after a restart).
    engine: true,
    description: "Longest time between automatic checkpoints.",
  },
  {
    name: "checkpoint_completion_target",
    type: "real",
    // PostgreSQL's is sighup; PGlite reads it only when the engine starts.
    context: "postmaster",
    boot: 0.9,
    min: 0,
    max: 1,
    engine: true,
    description:
      "Fraction of the checkpoint interval over which a checkpoint spreads its writes; passed to the engine.",
  },
  {
    name: "max_wal_size",
    type: "int",
    // PostgreSQL's is sighup; PGlite reads it only when the engine starts.
    context: "postmaster",
    boot: 1024,
    min: 2,
    // MAX_KILOBYTES of 32-bit WebAssembly, as PGlite bounds it.
    max: 2097151,
    unit: "MB",
    engine: true,
    description:
      "WAL written since the last checkpoint that makes the engine checkpoint; passed to the engine.",
  },
  {
    name: "min_wal_size",
    type: "int",
    // PostgreSQL's is sighup; PGlite reads it only when the engine starts.
    context: "postmaster",
    boot: 80,
    min: 2,
    // MAX_KILOBYTES of 32-bit WebAssembly, as PGlite bounds it.
    max: 2097151,
    unit: "MB",
    engine: true,
    description: "WAL kept for reuse after a checkpoint rather than removed; passed to the engine.",
  },
];
