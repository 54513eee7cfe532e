/**
 * ALTER SYSTEM, carried out by the cluster. PostgreSQL writes the change
 * into postgresql.auto.conf in its data directory, which the postmaster
 * reads after postgresql.conf at start and at every reload. PGlite's
 * backend would write the file of its own engine (one of several, a
 * database each, under DIR/pglite), which nothing reads; here the cluster
 * writes DIR/postgresql.auto.conf, which pgts's settings read after
 * DIR/postgresql.conf (src/core/guc/guc.ts's autoConfigFile). As in
 * PostgreSQL the change takes effect at the next reload (`SELECT
 * pg_reload_conf()`, `pgts reload`) or, for a postmaster parameter, the next
 * start.
 *
 * Checked as PostgreSQL checks it: superusers only (there are no GRANTs on
 * parameters here); the name must be a parameter pgts knows (or a custom
 * `a.b` one) and the value valid for it; internal parameters and
 * data_directory cannot be set; a value may not hold a newline. Not inside
 * a transaction block (answers.ts's databaseCommandRefusal): the file is
 * not transactional.
 */

import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ERRCODE, PgError } from "../../core/elog.ts";
import { AUTO_CONFIG_FILENAME, AUTO_CONFIG_HEADER, Guc } from "../../core/guc/guc.ts";
import { parseConfigFile } from "../../core/guc/parser.ts";
import { nodeConfigReader } from "../../adapters/node/config-reader.ts";
import { commandComplete, type DatabaseCluster, Parser } from "./dbcommands.ts";
import { currentUserOf } from "./offengine.ts";
import type { PgliteSession } from "./session.ts";

/** The statement is an ALTER SYSTEM (the cluster's to carry out, as CREATE DATABASE is). */
export function isAlterSystem(sql: string): boolean {
  return /^\s*alter\s+system\b/i.test(sql);
}

/** Parameters PostgreSQL keeps out of postgresql.auto.conf (GUC_DISALLOW_IN_AUTO_FILE). */
const NOT_IN_AUTO_FILE = new Set(["data_directory", "config_file", "hba_file", "ident_file"]);

/** What one ALTER SYSTEM asks: set `name` to `value`, reset `name` (value null), or reset all. */
type Change = { readonly name: string; readonly value: string | null } | { readonly all: true };

/**
 * ALTER SYSTEM SET name { TO | = } { value [, ...] | DEFAULT }, or ALTER
 * SYSTEM RESET { name | ALL }, after its first two words.
 */
function parseChange(p: Parser): Change {
  if (p.accept("reset")) {
    if (p.accept("all")) {
      p.end();
      return { all: true };
    }
    const name = qualifiedName(p);
    p.end();
    return { name, value: null };
  }
  p.expect("set");
  const name = qualifiedName(p);
  if (!p.accept("to")) {
    if (p.peek()?.text !== "=") throw p.syntaxError(p.peek() ?? null);
    p.next();
  }
  if (p.accept("default")) {
    p.end();
    return { name, value: null };
  }
  const items: string[] = [];
  for (;;) {
    const t = p.value();
    items.push(t.kind === "word" ? t.text : t.raw);
    if (p.atEnd()) break;
    if (p.peek()?.text !== ",") throw p.syntaxError(p.peek()!);
    p.next();
  }
  return { name, value: items.join(", ") };
}

/** A parameter's name, `a.b` for a custom one. */
function qualifiedName(p: Parser): string {
  let name = p.name();
  while (p.peek()?.text === ".") {
    p.next();
    name += `.${p.name()}`;
  }
  return name;
}

/** A value as postgresql.conf quotes it: backslashes and single quotes escaped. */
function quoted(value: string): string {
  return `'${value.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`;
}

/** Carries out one ALTER SYSTEM for `session`; the answer's CommandComplete. */
export function alterSystem(
  cluster: DatabaseCluster,
  session: PgliteSession,
  sql: string,
): Uint8Array {
  const superuser = cluster.role(currentUserOf(session))?.superuser === true;
  const dataDir = cluster.dataDir;
  const p = new Parser(sql);
  p.expect("alter");
  p.expect("system");
  const change = parseChange(p);
  const validator = new Guc();
  let name: string | null = null;
  if ("name" in change) {
    name = change.name.toLowerCase();
    if (!superuser) {
      throw new PgError(
        ERRCODE.INSUFFICIENT_PRIVILEGE,
        `permission denied to set parameter "${change.name}"`,
      );
    }
    if (!validator.has(name) && !name.includes(".")) {
      throw new PgError(
        ERRCODE.UNDEFINED_OBJECT,
        `unrecognized configuration parameter "${change.name}"`,
      );
    }
    if (NOT_IN_AUTO_FILE.has(name)) {
      throw new PgError(
        ERRCODE.CANT_CHANGE_RUNTIME_PARAM,
        `parameter "${change.name}" cannot be changed`,
      );
    }
    if (change.value !== null) {
      if (/[\n\r]/.test(change.value)) {
        throw new PgError(
          ERRCODE.INVALID_PARAMETER_VALUE,
          "parameter value for ALTER SYSTEM must not contain a newline",
        );
      }
      // PostgreSQL's messages for an unknown name, a bad value, an internal parameter.
      validator.set(change.name, change.value, { source: "argv" });
    }
  } else if (!superuser) {
    throw new PgError(
      ERRCODE.INSUFFICIENT_PRIVILEGE,
      "permission denied to perform ALTER SYSTEM RESET ALL",
    );
  }

  const path = join(dataDir, AUTO_CONFIG_FILENAME);
  const now = parseConfigFile(path, nodeConfigReader, []);
  // The file is pgts's own, one line a parameter; a hand edit that broke it is reported.
  if (now.errors.length > 0 && nodeConfigReader.readFile(path) !== null) {
    throw new PgError(
      ERRCODE.CONFIG_FILE_ERROR,
      `could not parse contents of file "${path}"`,
      { detail: now.errors[0]!.message },
    );
  }
  const lines = new Map<string, string>();
  if (!("all" in change)) {
    for (const item of now.items) {
      lines.set(item.name.toLowerCase(), `${item.name} = ${quoted(item.value)}`);
    }
    if (change.value === null) lines.delete(name!);
    else lines.set(name!, `${change.name} = ${quoted(change.value)}`);
  }
  const text = AUTO_CONFIG_HEADER + [...lines.values()].map((l) => `${l}\n`).join("");
  const temp = `${path}.tmp`;
  writeFileSync(temp, text, { mode: 0o600 });
  renameSync(temp, path);
  return commandComplete("ALTER SYSTEM");
}
