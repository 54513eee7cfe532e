/**
 * `pgts dump`: a logical dump of one database of a running server, made by
 * PostgreSQL 18's own pg_dump (the engine's version) compiled to WASM, from
 * @electric-sql/pglite-tools. The data directory is never opened: pg_dump
 * talks to the server over a real connection (TCP or the Unix socket), like
 * any client, so the server keeps running and serving while it dumps; the
 * dump is one consistent snapshot, as pg_dump's always is. Any PostgreSQL 18
 * or older that speaks the protocol can be dumped the same way.
 *
 * How the WASM pg_dump is connected to the server is in dump/worker.ts.
 */

import { closeSync, openSync, writeSync } from "node:fs";
import process from "node:process";
import { type CliIO, parseVerbArgs, PROGNAME } from "./args.ts";
import { CONN_HELP, CONN_OPTIONS, conninfoString, connTarget, describe } from "./conninfo.ts";
import { type DumpSink, runPgDump } from "./dump/relay.ts";
import { FE } from "../core/protocol/constants.ts";

export const DUMP_USAGE =
  `${PROGNAME} dump [-D DATADIR | -h HOST -p PORT] [-U NAME] [-d DBNAME] [-F p|c] [-f FILE] [OPTION]...`;

export const DUMP_HELP =
  `${PROGNAME} dump writes a database of a running server as an SQL script or a
custom-format archive, with PostgreSQL 18's pg_dump (the engine's version,
compiled to WebAssembly) over an ordinary connection: the server keeps running
and serving clients, and the dump is one consistent snapshot.

Usage:
  ${DUMP_USAGE}

General options:
  -f, --file=FILE          output file (default: standard output)
  -F, --format=p|c         plain SQL script (default) or custom-format archive
  -v, --verbose            pg_dump's verbose messages on stderr
  --help                   show this help, then exit

Options controlling the output content:
  -s, --schema-only        dump only the schema, no data
  -a, --data-only          dump only the data, not the schema
  -t, --table=PATTERN      dump only the matching tables (repeatable)
  -n, --schema=PATTERN     dump only the matching schemas (repeatable)
  -c, --clean              drop objects before creating them
  --if-exists              use IF EXISTS when dropping objects
  -O, --no-owner           skip restoration of object ownership
  -x, --no-privileges      do not dump privileges (grant/revoke)
  --disable-triggers       with --data-only: disable triggers while the data is restored
  --rows-per-insert=N      rows per INSERT statement (default: 100)

${CONN_HELP}

Table data is written as INSERT statements (pglite-tools' pg_dump always adds
--inserts), so a plain dump restores through any SQL connection, not only psql;
100 rows to a statement restore ten times faster than one (pg_dump's default
with --inserts, --rows-per-insert=1).
A custom-format archive needs PostgreSQL 18's pg_restore to read it: pgts
restore takes plain scripts only. Writing to a file, the number of tables
dumped so far and the bytes written are reported on stderr.

Exit status: 0 when the dump is complete, 1 otherwise.
`;

const FORMATS: Record<string, "p" | "c"> = { p: "p", plain: "p", c: "c", custom: "c" };

/**
 * Progress on stderr: every two seconds at most, the tables begun so far, the
 * one being dumped and the bytes written; a summary at the end.
 */
class Progress {
  readonly #io: CliIO;
  readonly #started = Date.now();
  #last = Date.now();
  #current = "";
  tables = 0;
  bytes = 0;

  constructor(io: CliIO) {
    this.#io = io;
  }

  table(name: string): void {
    this.tables++;
    this.#current = name;
    this.#report();
  }

  wrote(end: number): void {
    this.bytes = Math.max(this.bytes, end);
    this.#report();
  }

  #report(): void {
    const now = Date.now();
    if (now - this.#last < 2000) return;
    this.#last = now;
    const doing = this.#current === "" ? "reading the schema" : `dumping ${this.#current}`;
    this.#io.err(
      `${PROGNAME} dump: ${this.tables} table${this.tables === 1 ? "" : "s"} so far, ${doing}, ${
        mib(this.bytes)
      } written\n`,
    );
  }

  done(): void {
    const secs = ((Date.now() - this.#started) / 1000).toFixed(1);
    this.#io.err(
      `${PROGNAME} dump: dumped ${this.tables} table${this.tables === 1 ? "" : "s"}, ${
        mib(this.bytes)
      } in ${secs} s\n`,
    );
  }
}

function mib(bytes: number): string {
  return bytes < 1 << 20
    ? `${(bytes / 1024).toFixed(1)} kB`
    : `${(bytes / (1 << 20)).toFixed(1)} MB`;
}

/**
 * pg_dump's stderr, line by line, without find_my_exec's complaint that the
 * WASM file system has no pg_dump binary (it looks for itself to find its
 * installation directory, which a WASM build does not have or need), and
 * with the server named as it really is: the WASM libpq believes it talks
 * to /tmp/.s.PGSQL.5432, which is the bridge.
 */
class StderrLines {
  readonly #io: CliIO;
  readonly #server: string;
  #partial = "";

  constructor(io: CliIO, server: string) {
    this.#io = io;
    this.#server = server;
  }

  push(text: string): void {
    const lines = (this.#partial + text).split("\n");
    this.#partial = lines.pop() ?? "";
    for (const line of lines) this.#line(line);
  }

  end(): void {
    if (this.#partial !== "") this.#line(this.#partial);
    this.#partial = "";
  }

  #line(line: string): void {
    if (/^(invalid binary "|could not find a "pg_dump" to execute)/.test(line) || line === "") {
      return;
    }
    this.#io.err(`${line.replace('on socket "/tmp/.s.PGSQL.5432"', this.#server)}\n`);
  }
}

/** The table of pg_dump's data query ("DECLARE _pg_dump_cursor CURSOR FOR SELECT ... FROM ONLY t"). */
function tableOfQuery(bytes: Uint8Array): string | null {
  if (bytes[0] !== FE.Query || bytes.length > 1 << 16) return null;
  const sql = new TextDecoder().decode(bytes.subarray(5, bytes.length - 1));
  if (!sql.startsWith("DECLARE _pg_dump_cursor CURSOR FOR")) return null;
  return / FROM ONLY (\S+)/.exec(sql)?.[1] ?? "?";
}

function fileSink(path: string): DumpSink & { close(): void } {
  const fd = openSync(path, "w");
  return {
    seekable: true,
    write: (pos, bytes) => {
      let at = 0;
      while (at < bytes.length) at += writeSync(fd, bytes, at, bytes.length - at, pos + at);
    },
    close: () => closeSync(fd),
  };
}

function stdoutSink(): DumpSink & { flush(): Promise<void> } {
  let expected = 0;
  return {
    seekable: false,
    write: (pos, bytes) => {
      if (pos !== expected) throw new RangeError(`Out-of-order write at ${pos} to standard output`);
      expected += bytes.length;
      process.stdout.write(bytes);
    },
    flush: () => new Promise((resolve) => process.stdout.write("", () => resolve())),
  };
}

export async function runDump(args: string[], io: CliIO): Promise<number> {
  const v = parseVerbArgs("dump", args, {
    usage: DUMP_USAGE,
    io,
    options: {
      ...CONN_OPTIONS,
      file: { type: "string", short: "f" },
      format: { type: "string", short: "F" },
      verbose: { type: "boolean", short: "v" },
      "schema-only": { type: "boolean", short: "s" },
      "data-only": { type: "boolean", short: "a" },
      table: { type: "string", short: "t", multiple: true },
      schema: { type: "string", short: "n", multiple: true },
      clean: { type: "boolean", short: "c" },
      "if-exists": { type: "boolean" },
      "no-owner": { type: "boolean", short: "O" },
      "no-privileges": { type: "boolean", short: "x" },
      "disable-triggers": { type: "boolean" },
      "rows-per-insert": { type: "string" },
      help: { type: "boolean", short: "?" },
    },
  });
  if (v.help) {
    io.out(DUMP_HELP);
    return 0;
  }
  const format = FORMATS[v.format ?? "p"];
  if (format === undefined) {
    io.err(`${PROGNAME} dump: error: invalid output format "${v.format}" specified (p or c)\n`);
    return 1;
  }
  if (v["schema-only"] && v["data-only"]) {
    io.err(
      `${PROGNAME} dump: error: options -s/--schema-only and -a/--data-only cannot be used together\n`,
    );
    return 1;
  }
  const rowsPerInsert = Number(v["rows-per-insert"] ?? "100");
  if (!Number.isInteger(rowsPerInsert) || rowsPerInsert < 1 || rowsPerInsert > 2147483647) {
    io.err(
      `${PROGNAME} dump: error: --rows-per-insert must be in range 1..2147483647, not "${
        v["rows-per-insert"]
      }"\n`,
    );
    return 1;
  }
  const target = connTarget("dump", v, io);

  const pgArgs = ["-F", format];
  if (v.verbose) pgArgs.push("-v");
  if (v["schema-only"]) pgArgs.push("--schema-only");
  if (v["data-only"]) pgArgs.push("--data-only");
  for (const t of v.table ?? []) pgArgs.push("-t", t);
  for (const n of v.schema ?? []) pgArgs.push("-n", n);
  if (v.clean) pgArgs.push("--clean");
  if (v["if-exists"]) pgArgs.push("--if-exists");
  if (v["no-owner"]) pgArgs.push("--no-owner");
  if (v["no-privileges"]) pgArgs.push("--no-privileges");
  if (v["disable-triggers"]) pgArgs.push("--disable-triggers");
  pgArgs.push(`--rows-per-insert=${rowsPerInsert}`);
  // -w: nothing can answer a password prompt here (the password is $PGPASSWORD).
  pgArgs.push("-w", "-d", conninfoString(target));

  const file = v.file !== undefined && v.file !== "-" ? v.file : null;
  let sink: DumpSink & { close?(): void; flush?(): Promise<void> };
  try {
    sink = file === null ? stdoutSink() : fileSink(file);
  } catch (e) {
    io.err(
      `${PROGNAME} dump: error: could not open output file "${file}": ${(e as Error).message}\n`,
    );
    return 1;
  }
  const progress = file !== null || v.verbose ? new Progress(io) : null;
  const counted: DumpSink = {
    seekable: sink.seekable,
    write: (pos, bytes) => {
      sink.write(pos, bytes);
      progress?.wrote(pos + bytes.length);
    },
  };

  const stderr = new StderrLines(io, target.display);
  let result;
  try {
    result = await runPgDump({
      address: target.address,
      args: pgArgs,
      sink: counted,
      onStderr: (text) => stderr.push(text),
      onSend: (bytes) => {
        const table = progress === null ? null : tableOfQuery(bytes);
        if (table !== null) progress?.table(table);
      },
    });
  } catch (e) {
    io.err(
      `${PROGNAME} dump: error: connection to server ${describe(target.address)} failed: ${
        (e as Error).message
      }\n`,
    );
    return 1;
  } finally {
    stderr.end();
    sink.close?.();
    await sink.flush?.();
  }
  if (!result.ok) {
    // pg_dump's own messages went to stderr as it wrote them.
    const status = /exit code (\d+)/.exec(result.message)?.[1];
    io.err(
      `${PROGNAME} dump: error: ${
        status === undefined
          ? result.message.split("\n")[0]
          : `pg_dump exited with status ${status}`
      }; no complete dump was written\n`,
    );
    return 1;
  }
  progress?.done();
  return 0;
}
