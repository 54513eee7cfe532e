/**
 * The admin console: a virtual database named `pgts` that psql (or any
 * client) can connect to, the way pgbouncer's `pgbouncer` database works.
 * It answers `SHOW ACTIVITY`, `SHOW MEMORY <pid>`, `SHOW WORKERS`,
 * `SHOW ARCHIVER`, `RELOAD` and `SHOW HELP` with rows from an AdminSource, over the simple
 * and the extended query protocol.
 *
 * `withAdminConsole(engine, source)` wraps an Engine so that a session
 * for database "pgts" is a console session and every other goes to the
 * engine; pg_hba.conf and password authentication have already run by then
 * (the backend does them before startSession), and the console admits
 * superusers only. A console session never touches the engine.
 */

import { ERRCODE, PgError } from "../core/elog.ts";
import type {
  Engine,
  EngineSession,
  SessionStartup,
  TransactionStatus,
} from "../core/engine/types.ts";
import {
  FE,
  type FieldDescription,
  MessageReader,
  MessageWriter,
  parseParse,
  parseQuery,
  writeBindComplete,
  writeCloseComplete,
  writeCommandComplete,
  writeDataRow,
  writeEmptyQueryResponse,
  writeErrorResponse,
  writeNoData,
  writeParameterDescription,
  writeParseComplete,
  writeReadyForQuery,
  writeRowDescription,
} from "../core/protocol/mod.ts";
import type { AdminSource } from "./admin.ts";
import type { ArchiverStats } from "../engines/pglite/pgstat_archiver.ts";

/** The name of the virtual admin database. */
export const ADMIN_DATABASE = "pgts";

const TEXT = 25;
const INT4 = 23;
const INT8 = 20;
const TIMESTAMPTZ = 1184;

/** One console command's answer: a result set, or a tag alone. */
export interface ConsoleResult {
  readonly fields: FieldDescription[];
  readonly rows: (string | null)[][];
  readonly tag: string;
}

const HELP = [
  "SHOW ACTIVITY       the postmaster's children and the backend runs, with their queries",
  "SHOW MEMORY <pid>   pg_backend_memory_contexts of a backend run",
  "SHOW WORKERS        background workers and their handles",
  "SHOW ARCHIVER       the WAL archiver's counters (pg_stat_archiver's row)",
  "RELOAD              re-read the configuration files (SIGHUP)",
];

const str = (v: unknown): string | null => v === null || v === undefined ? null : String(v);

/** An ISO 8601 time as timestamptz's text output (ISO DateStyle, UTC), as psql shows it. */
function timestamptz(iso: string | null): string | null {
  if (iso === null) return null;
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?Z$/.exec(iso);
  if (m === null) return iso;
  const fraction = (m[3] ?? "").replace(/\.?0+$/, "");
  return `${m[1]} ${m[2]}${fraction}+00`;
}

/** pg_stat_archiver's row as SHOW ARCHIVER's result. */
function archiverResult(a: ArchiverStats): ConsoleResult {
  return {
    fields: [
      { name: "archived_count", typeOid: INT8 },
      { name: "last_archived_wal", typeOid: TEXT },
      { name: "last_archived_time", typeOid: TIMESTAMPTZ },
      { name: "failed_count", typeOid: INT8 },
      { name: "last_failed_wal", typeOid: TEXT },
      { name: "last_failed_time", typeOid: TIMESTAMPTZ },
      { name: "stats_reset", typeOid: TIMESTAMPTZ },
    ],
    rows: [[
      String(a.archived_count),
      a.last_archived_wal,
      timestamptz(a.last_archived_time),
      String(a.failed_count),
      a.last_failed_wal,
      timestamptz(a.last_failed_time),
      timestamptz(a.stats_reset),
    ]],
    tag: "SHOW",
  };
}

/** Runs one console command; throws (or rejects with) an ERROR PgError for anything else. */
export function runConsoleCommand(
  source: AdminSource,
  sql: string,
): ConsoleResult | null | Promise<ConsoleResult> {
  const text = sql.trim().replace(/;\s*$/, "").trim();
  if (text === "") return null;
  const words = text.split(/\s+/);
  const verb = words.map((w) => w.toUpperCase()).join(" ");
  if (verb === "SHOW ACTIVITY") {
    const { children } = source.status();
    return {
      fields: [
        { name: "pid", typeOid: INT4 },
        { name: "kind", typeOid: TEXT },
        { name: "name", typeOid: TEXT },
        { name: "state", typeOid: TEXT },
        { name: "backend_start", typeOid: TEXT },
        { name: "query", typeOid: TEXT },
      ],
      rows: children.map((c) => [
        String(c.pid),
        c.kind,
        c.name,
        c.state,
        c.backend_start,
        c.query,
      ]),
      tag: "SHOW",
    };
  }
  if (words.length === 3 && verb.startsWith("SHOW MEMORY ")) {
    const pid = /^\d{1,10}$/.test(words[2]!) ? Number(words[2]) : NaN;
    const contexts = Number.isNaN(pid) ? null : source.memory(pid);
    if (contexts === null) {
      throw new PgError(
        ERRCODE.UNDEFINED_OBJECT,
        `process ${words[2]} is not a child whose memory contexts this server can read`,
      );
    }
    return {
      fields: [
        { name: "name", typeOid: TEXT },
        { name: "ident", typeOid: TEXT },
        { name: "type", typeOid: TEXT },
        { name: "level", typeOid: INT4 },
        { name: "path", typeOid: 1007 },
        { name: "total_bytes", typeOid: INT8 },
        { name: "total_nblocks", typeOid: INT8 },
        { name: "free_bytes", typeOid: INT8 },
        { name: "free_chunks", typeOid: INT8 },
        { name: "used_bytes", typeOid: INT8 },
      ],
      rows: contexts.map((m) => [
        m.name,
        m.ident,
        m.type,
        String(m.level),
        `{${m.path.join(",")}}`,
        String(m.total_bytes),
        String(m.total_nblocks),
        String(m.free_bytes),
        String(m.free_chunks),
        String(m.used_bytes),
      ]),
      tag: "SHOW",
    };
  }
  if (verb === "SHOW WORKERS") {
    return {
      fields: [
        { name: "handle", typeOid: INT4 },
        { name: "name", typeOid: TEXT },
        { name: "type", typeOid: TEXT },
        { name: "dynamic", typeOid: 16 },
        { name: "status", typeOid: TEXT },
        { name: "pid", typeOid: INT4 },
      ],
      rows: source.workers().map((w) => [
        String(w.handle),
        w.name,
        w.type,
        w.dynamic ? "t" : "f",
        w.status,
        str(w.pid),
      ]),
      tag: "SHOW",
    };
  }
  if (verb === "SHOW ARCHIVER") return source.archiver().then(archiverResult);
  if (verb === "RELOAD") {
    source.reload();
    return { fields: [], rows: [], tag: "RELOAD" };
  }
  if (verb === "SHOW HELP") {
    return {
      fields: [{ name: "command", typeOid: TEXT }],
      rows: HELP.map((h) => [h]),
      tag: "SHOW",
    };
  }
  throw new PgError(ERRCODE.SYNTAX_ERROR, `unrecognized admin console command "${text}"`, {
    hint: "Try SHOW HELP.",
  });
}

function writeResult(w: MessageWriter, r: ConsoleResult | null, describe: boolean): void {
  if (r === null) {
    writeEmptyQueryResponse(w);
    return;
  }
  if (describe && r.fields.length > 0) writeRowDescription(w, r.fields);
  for (const row of r.rows) writeDataRow(w, row);
  writeCommandComplete(w, r.tag);
}

/**
 * Runs one console command (null for an empty one); throws (or rejects
 * with) an ERROR PgError to refuse it. A command may take its time (a
 * pooler's PAUSE waits for its connections to come back).
 */
export type ConsoleCommands = (sql: string) => ConsoleResult | null | Promise<ConsoleResult | null>;

/** One client's session on an admin console. */
export class AdminConsoleSession implements EngineSession {
  onAsync: ((backend: Uint8Array) => void) | null = null;
  onTerminate: ((reason: PgError) => void) | null = null;
  #run: ConsoleCommands;
  #statement = "";
  #pending: ConsoleResult | null = null;
  #failed = false;

  constructor(run: ConsoleCommands) {
    this.#run = run;
  }

  get transactionStatus(): TransactionStatus {
    return "I";
  }

  async exec(frontend: Uint8Array, out: (backend: Uint8Array) => void): Promise<void> {
    const reader = new MessageReader();
    reader.push(frontend.slice());
    const w = new MessageWriter();
    for (let m = reader.read(); m !== null; m = reader.read()) {
      try {
        await this.#message(w, m.type, m.body);
      } catch (e) {
        const err = e instanceof PgError
          ? e
          : new PgError(ERRCODE.INTERNAL_ERROR, e instanceof Error ? e.message : String(e));
        writeErrorResponse(w, err);
        if (m.type === FE.Query) writeReadyForQuery(w, "I");
        else this.#failed = true;
      }
    }
    out(w.take());
  }

  async #message(w: MessageWriter, type: number, body: Uint8Array): Promise<void> {
    if (type === FE.Sync) {
      this.#failed = false;
      writeReadyForQuery(w, "I");
      return;
    }
    if (this.#failed) return; // after an error, skip to Sync
    switch (type) {
      case FE.Query:
        writeResult(w, await this.#run(parseQuery(body)), true);
        writeReadyForQuery(w, "I");
        return;
      case FE.Parse:
        this.#statement = parseParse(body).query;
        this.#pending = null;
        writeParseComplete(w);
        return;
      case FE.Bind:
        this.#pending = await this.#run(this.#statement);
        writeBindComplete(w);
        return;
      case FE.Describe: {
        if (body[0] === 0x53) writeParameterDescription(w, []);
        const r = body[0] === 0x53 ? await this.#run(this.#statement) : this.#pending;
        if (r === null || r.fields.length === 0) writeNoData(w);
        else writeRowDescription(w, r.fields);
        return;
      }
      case FE.Execute:
        writeResult(w, this.#pending, false);
        return;
      case FE.Close:
        writeCloseComplete(w);
        return;
      case FE.Flush:
      case FE.Terminate:
        return;
      default:
        throw new PgError(
          ERRCODE.FEATURE_NOT_SUPPORTED,
          "the admin console supports simple and extended queries only",
        );
    }
  }

  cancel(): void {}

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * An Engine whose database "pgts" is an admin console, for superusers:
 * `source`'s commands (the HTTP server's), or `commands` as given.
 */
export function withAdminConsole(engine: Engine, source: AdminSource | ConsoleCommands): Engine {
  const run: ConsoleCommands = typeof source === "function"
    ? source
    : (sql) => runConsoleCommand(source, sql);
  return {
    lookupRole: (name) => engine.lookupRole(name),
    async startSession(startup: SessionStartup) {
      if (startup.database !== ADMIN_DATABASE) return await engine.startSession(startup);
      const role = await engine.lookupRole(startup.user);
      if (role === null || !role.superuser) {
        throw new PgError(
          "42501", // insufficient_privilege
          `permission denied for the admin console "${ADMIN_DATABASE}"`,
          { severity: "FATAL", detail: "Only superusers can connect to the admin console." },
        );
      }
      return {
        session: new AdminConsoleSession(run),
        parameterStatus: [
          ["server_version", "pgts admin console"],
          ["client_encoding", "UTF8"],
          ["server_encoding", "UTF8"],
          ["standard_conforming_strings", "on"],
          ["DateStyle", "ISO, MDY"],
          ["integer_datetimes", "on"],
        ],
      };
    },
    close: () => engine.close(),
  };
}
