/**
 * Command-line plumbing shared by the pgts verbs: option parsing with
 * node:util parseArgs turned into pg_ctl-style messages, the output streams a
 * verb writes to (injectable, so tests can capture them), and the data
 * directory from -D or PGDATA.
 */

import process from "node:process";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { ERRCODE, isPgError, PgError } from "../core/elog.ts";
import type { Guc } from "../core/guc/guc.ts";

export const PROGNAME = "pgts";
export const PGTS_VERSION = "0.1.0";

/** Where a verb prints; the entry point passes stdout and stderr. */
export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  /** Environment variables (PGDATA). */
  readonly env: Readonly<Record<string, string | undefined>>;
}

export const processIO: CliIO = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  env: process.env,
};

/** A usage error already reported; the verb exits with `code`. */
export class CliExit extends Error {
  readonly code: number;

  constructor(code: number) {
    super(`exit ${code}`);
    this.code = code;
  }
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * Parses a verb's arguments. On a bad option prints the error, the usage line
 * and the "Try --help" line to stderr and throws CliExit(1).
 */
export function parseVerbArgs<O extends Options>(
  verb: string,
  args: string[],
  options: { options: O; usage: string; io: CliIO },
) {
  const fail = (message: string): never => {
    options.io.err(`${PROGNAME} ${verb}: ${message}\n`);
    options.io.err(`Usage: ${options.usage}\n`);
    options.io.err(`Try "${PROGNAME} ${verb} --help" for more information.\n`);
    throw new CliExit(1);
  };
  let parsed;
  try {
    parsed = parseArgs({ args, options: options.options, strict: true, allowPositionals: true });
  } catch (e) {
    const code = (e as { code?: string }).code;
    const msg = e instanceof Error ? e.message : String(e);
    const opt = /'(-[^',]+)/.exec(msg)?.[1] ?? "";
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return fail(`unrecognized option '${opt}'`);
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      const long = /--([a-z-]+)/.exec(msg)?.[1];
      return fail(`option '${long === undefined ? opt : `--${long}`}' requires an argument`);
    }
    return fail(msg);
  }
  if (parsed.positionals.length > 0) {
    fail(`too many command-line arguments (first is "${parsed.positionals[0]}")`);
  }
  return parsed.values;
}

/** The data directory from -D, else PGDATA; reports pg_ctl's message when neither is set. */
export function dataDirFrom(verb: string, value: unknown, io: CliIO): string {
  if (typeof value === "string" && value !== "") return value;
  const env = io.env.PGDATA;
  if (env !== undefined && env !== "") return env;
  io.err(
    `${PROGNAME}: no database directory specified and environment variable PGDATA unset\n`,
  );
  io.err(`Try "${PROGNAME} ${verb} --help" for more information.\n`);
  throw new CliExit(1);
}

/**
 * The settings a server verb is started with, in the order they apply: its
 * own options' (`first`: -p, --engine), then each `-c NAME=VALUE` (dashes
 * in NAME read as underscores, as postgres reads them). An item without
 * "=" is FATAL 42601.
 */
export function settingOverrides(
  items: readonly string[] | undefined,
  first: readonly [string, string][] = [],
): [string, string][] {
  const overrides: [string, string][] = [...first];
  for (const item of items ?? []) {
    const eq = item.indexOf("=");
    if (eq < 0) {
      throw new PgError(ERRCODE.SYNTAX_ERROR, `-c ${item} requires a value`, {
        severity: "FATAL",
      });
    }
    overrides.push([item.slice(0, eq).replace(/-/g, "_"), item.slice(eq + 1)]);
  }
  return overrides;
}

/** Sets them as command-line settings; a value the setting refuses is FATAL with its own error. */
export function applyOverrides(guc: Guc, overrides: readonly [string, string][]): void {
  for (const [name, value] of overrides) {
    try {
      guc.set(name, value, { source: "argv" });
    } catch (e) {
      if (isPgError(e)) throw new PgError(e.code, e.message, { ...e.fields, severity: "FATAL" });
      throw e;
    }
  }
}
