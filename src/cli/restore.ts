/**
 * `pgts restore`: runs a plain SQL dump (from `pgts dump` or any pg_dump)
 * against a running server through an ordinary connection, the way
 * `psql -v ON_ERROR_STOP=1 -f FILE` does: statement by statement, COPY data
 * included, stopping at the first error with the script line and the
 * statement; `-1` wraps the whole script in one transaction, so that a
 * failure leaves nothing behind. pg_dump's `\restrict`/`\unrestrict` lines
 * are honoured (no other meta-command may run in between); other
 * meta-commands are refused. Custom-format archives need pg_restore, which
 * pglite-tools does not have: such a file is recognised and refused.
 */

import { closeSync, createReadStream, openSync, readSync } from "node:fs";
import process from "node:process";
import { dialUpstream } from "../http/upstream.ts";
import { isPgError } from "../core/elog.ts";
import type { NoticeFields } from "../core/protocol/backend-reader.ts";
import { openUpstream } from "../engines/upstream/connect.ts";
import { NO_SSL } from "../engines/upstream/url.ts";
import { type CliIO, parseVerbArgs, PROGNAME } from "./args.ts";
import { CONN_HELP, CONN_OPTIONS, connTarget } from "./conninfo.ts";
import { isCopyFromStdin, ScriptReader, splitLines } from "./restore/script.ts";
import { ScriptSession } from "./restore/session.ts";

export const RESTORE_USAGE =
  `${PROGNAME} restore [-D DATADIR | -h HOST -p PORT] [-U NAME] [-d DBNAME] [-1] [FILE]`;

export const RESTORE_HELP =
  `${PROGNAME} restore runs a plain SQL dump (${PROGNAME} dump's, or pg_dump's) against a
running server, like psql -v ON_ERROR_STOP=1 -f FILE: it stops at the first
error and reports the script line and the statement.

Usage:
  ${RESTORE_USAGE}

Options:
  FILE, -f, --file=FILE    the script to run (standard input when omitted or "-")
  -1, --single-transaction run the whole script in one transaction: on an error
                           nothing of it is kept (as with psql -1, a script's own
                           BEGIN/COMMIT, which pg_dump writes around large
                           objects, ends that transaction early)
  -v, --verbose            report the statements run and the time taken
  --help                   show this help, then exit

${CONN_HELP}

Only plain SQL scripts: a custom-format archive (pgts dump -F c) needs
PostgreSQL 18's pg_restore, which the engine's tools (pglite-tools) do not
include; it is recognised and refused.

Exit status: 0 when every statement succeeded, 1 otherwise.
`;

/** Statements sent ahead of their answers inside a single transaction. */
const PIPELINE_WINDOW = 64;

function formatError(prefix: string, f: NoticeFields): string {
  let text = `${prefix}${f.severity}:  ${f.message}\n`;
  if (f.detail !== undefined) text += `DETAIL:  ${f.detail}\n`;
  if (f.hint !== undefined) text += `HINT:  ${f.hint}\n`;
  return text;
}

/** Whether the file starts like a custom-format archive ("PGDMP"). */
function isArchive(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    const head = new Uint8Array(5);
    return readSync(fd, head, 0, 5, 0) === 5 && new TextDecoder().decode(head) === "PGDMP";
  } finally {
    closeSync(fd);
  }
}

export async function runRestore(args: string[], io: CliIO): Promise<number> {
  // pg_restore takes the file as an argument; parseVerbArgs takes none.
  const isFile = (a: string, i: number) =>
    (a === "-" || !a.startsWith("-")) && !takesValue(args[i - 1]);
  const positional = args.filter(isFile);
  const options = args.filter((a, i) => !isFile(a, i));
  const v = parseVerbArgs("restore", options, {
    usage: RESTORE_USAGE,
    io,
    options: {
      ...CONN_OPTIONS,
      file: { type: "string", short: "f" },
      "single-transaction": { type: "boolean", short: "1" },
      verbose: { type: "boolean", short: "v" },
      help: { type: "boolean", short: "?" },
    },
  });
  if (v.help) {
    io.out(RESTORE_HELP);
    return 0;
  }
  if (positional.length > 1 || (positional.length === 1 && v.file !== undefined)) {
    io.err(
      `${PROGNAME} restore: error: too many command-line arguments (first is "${
        positional.at(-1)
      }")\n`,
    );
    io.err(`Try "${PROGNAME} restore --help" for more information.\n`);
    return 1;
  }
  const path = positional[0] ?? v.file ?? "-";
  const name = path === "-" ? "<stdin>" : path;
  if (path !== "-") {
    try {
      if (isArchive(path)) {
        io.err(
          `${PROGNAME} restore: error: "${path}" is a custom-format archive; ${PROGNAME} restore runs plain SQL scripts only\n` +
            `HINT:  PostgreSQL 18's pg_restore reads it (pglite-tools has no WASM pg_restore); dump with "${PROGNAME} dump -F p" to restore with ${PROGNAME}\n`,
        );
        return 1;
      }
    } catch (e) {
      io.err(
        `${PROGNAME} restore: error: could not open file "${path}": ${(e as Error).message}\n`,
      );
      return 1;
    }
  }
  const target = connTarget("restore", v, io);
  const started = Date.now();

  let upstream;
  try {
    upstream = await openUpstream(
      { ...target, display: target.display, ssl: NO_SSL },
      {
        database: target.database,
        params: { application_name: "pgts restore" },
        timeoutMs: 30_000,
        connect: dialUpstream,
      },
    );
  } catch (e) {
    const reason = isPgError(e) ? e.message : (e as Error).message;
    io.err(
      `${PROGNAME} restore: error: connection to server ${target.display} failed: ${
        reason.replace(/^could not connect to the upstream server: /, "")
      }\n`,
    );
    return 1;
  }

  const session = new ScriptSession(upstream.conn, {
    rest: upstream.rest,
    onNotice: (f, line) => io.err(formatError(`${PROGNAME} restore: ${name}:${line}: `, f)),
  });
  const input = path === "-" ? process.stdin : createReadStream(path);
  const reader = new ScriptReader(splitLines(input as AsyncIterable<Uint8Array>));
  const single = v["single-transaction"] === true;
  const window = single ? PIPELINE_WINDOW : 1;
  let failure: string | null = null;
  /** The key of pg_dump's \restrict, while it is in force. */
  let restrictKey: string | null = null;
  try {
    if (single) await session.run({ text: "BEGIN", line: 0 });
    for (;;) {
      const item = await reader.next();
      if (item === null) break;
      if (item.kind === "meta") {
        if (item.command === "restrict" && restrictKey === null && item.args !== "") {
          restrictKey = item.args;
          continue;
        }
        if (item.command === "unrestrict" && restrictKey !== null && item.args === restrictKey) {
          restrictKey = null;
          continue;
        }
        failure = `${name}:${item.line}: ${
          restrictKey !== null
            ? `backslash commands are restricted; only \\unrestrict is allowed`
            : `invalid command \\${item.command} (${PROGNAME} restore runs SQL and pg_dump's \\restrict only)`
        }\n`;
        break;
      }
      const copy = isCopyFromStdin(item.text);
      await session.run(
        copy ? { ...item, copyData: reader.copyData() } : item,
        window,
      );
      if (session.error !== null) break;
    }
    if (failure === null) await session.finish();
    if (failure === null && session.error === null && single) {
      await session.run({ text: "COMMIT", line: reader.line });
    }
  } catch (e) {
    failure = `${(e as Error).message}\n`;
  } finally {
    session.close();
  }
  const error = session.error;
  if (error !== null) {
    io.err(formatError(`${PROGNAME} restore: ${name}:${error.line}: `, error.fields));
    const bare = error.text.replace(/^(\s|--[^\n]*\n)*/, "");
    const text = bare.length > 500 ? `${bare.slice(0, 500)}…` : bare;
    io.err(`STATEMENT:  ${text}\n`);
    if (single) {
      io.err(`${PROGNAME} restore: the transaction was rolled back; nothing was restored\n`);
    }
    return 1;
  }
  if (failure !== null) {
    io.err(`${PROGNAME} restore: error: ${failure}`);
    if (single) {
      io.err(`${PROGNAME} restore: the transaction was rolled back; nothing was restored\n`);
    }
    return 1;
  }
  if (v.verbose) {
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    io.err(
      `${PROGNAME} restore: ${session.statements} statements, ${session.copyRows} COPY rows in ${secs} s\n`,
    );
  }
  return 0;
}

/** Options whose value is the next argument (to tell FILE from an option's value). */
function takesValue(arg: string | undefined): boolean {
  return arg !== undefined && /^(-[dhpUDf]|--(dbname|host|port|username|pgdata|file))$/.test(arg);
}
