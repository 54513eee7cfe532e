/**
 * The postgresql.conf reader, pgts's guc-file.l: splits a configuration file
 * into name/value items with the file and line each came from, following
 * PostgreSQL's lexical rules (`name = value` or `name value`, `#` comments,
 * single-quoted strings with '' and backslash escapes, bare numbers with unit
 * letters, unquoted words), and follows `include`, `include_if_exists` and
 * `include_dir` relative to the including file.
 *
 * It only reads syntax: whether a name is a known parameter or a value is
 * valid is guc.ts's business. Files are read through an injected
 * `ConfigReader`, so this module stays Web-standard.
 */

import { ereport, ERRCODE, PgError } from "../elog.ts";

/** How the parser reads files; the node:fs implementation is in src/adapters/node. */
export interface ConfigReader {
  /**
   * The text of a file, or null when it does not exist. Other failures throw
   * an Error whose message is the system's description ("Permission denied").
   */
  readFile(path: string): string | null;
  /** The regular files in a directory (names only), or null when it does not exist. */
  readDir(path: string): string[] | null;
}

/** One `name = value` line, after include processing. */
export interface ConfigItem {
  readonly name: string;
  readonly value: string;
  readonly file: string;
  readonly line: number;
}

export interface ParseResult {
  readonly items: ConfigItem[];
  /** Syntax and include errors, in file order; each names its file and line. */
  readonly errors: PgError[];
}

const MAX_INCLUDE_DEPTH = 10;
const MAX_SYNTAX_ERRORS = 100;
const UNDEFINED_FILE = "58P01";

type TokenKind = "id" | "qualified_id" | "string" | "unquoted" | "integer" | "real" | "equals";

interface Token {
  readonly kind: TokenKind | "error";
  readonly text: string;
}

const L = "A-Za-z_\\u0080-\\uFFFF";
const LD = "A-Za-z_0-9\\u0080-\\uFFFF";
// In flex's order: the longest match wins, ties go to the earlier rule.
const rules: [TokenKind, RegExp][] = [
  ["id", new RegExp(`[${L}][${LD}]*`, "y")],
  ["qualified_id", new RegExp(`[${L}][${LD}]*(?:\\.[${L}][${LD}]*)+`, "y")],
  ["string", /'(?:[^'\\\n]|\\.|'')*'/y],
  ["unquoted", new RegExp(`[${L}](?:[${LD}]|[-._:/])*`, "y")],
  ["integer", /[-+]?(?:0x[0-9a-fA-F]+|[0-9]+)[a-zA-Z]*/y],
  ["real", /[-+]?[0-9]*\.[0-9]*(?:[Ee][-+]?[0-9]+)?/y],
  ["equals", /=/y],
];

function tokenize(line: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === " " || c === "\t" || c === "\r") {
      i++;
      continue;
    }
    if (c === "#") break;
    let best: Token | null = null;
    for (const [kind, re] of rules) {
      re.lastIndex = i;
      const m = re.exec(line);
      if (m !== null && m[0].length > 0 && (best === null || m[0].length > best.text.length)) {
        best = { kind, text: m[0] };
      }
    }
    best ??= { kind: "error", text: c };
    tokens.push(best);
    i += best.text.length;
  }
  return tokens;
}

/** Strips the quotes of a string token and resolves its escapes (DeescapeQuotedString). */
export function unquote(token: string): string {
  const s = token.slice(1, -1);
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === "'" && s[i + 1] === "'") {
      out += "'";
      i++;
    } else if (c === "\\" && i + 1 < s.length) {
      const n = s[++i]!;
      const simple: Record<string, string> = { b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
      if (n in simple) out += simple[n];
      else if (n >= "0" && n <= "7") {
        let oct = n;
        while (oct.length < 3 && s[i + 1] !== undefined && s[i + 1]! >= "0" && s[i + 1]! <= "7") {
          oct += s[++i];
        }
        out += String.fromCharCode(parseInt(oct, 8));
      } else out += n;
    } else out += c;
  }
  return out;
}

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? (i === 0 ? "/" : ".") : path.slice(0, i);
}

/** Resolves `path` against the directory of `callingFile`, as PostgreSQL does for includes. */
export function resolveConfigPath(path: string, callingFile: string | null): string {
  if (path.startsWith("/") || callingFile === null) return path;
  const parts = `${dirname(callingFile)}/${path}`.split("/");
  const out: string[] = [];
  for (const p of parts) {
    if (p === "" || p === ".") continue;
    if (p === ".." && out.length > 0 && out[out.length - 1] !== "..") out.pop();
    else out.push(p);
  }
  const joined = out.join("/");
  return callingFile.startsWith("/") ? `/${joined}` : joined;
}

function syntaxError(file: string, line: number, token: Token | undefined): PgError {
  const where = token === undefined ? "near end of line" : `near token "${token.text}"`;
  return new PgError(ERRCODE.SYNTAX_ERROR, `syntax error in file "${file}" line ${line}, ${where}`);
}

const valueKinds: ReadonlySet<Token["kind"]> = new Set([
  "id",
  "string",
  "integer",
  "real",
  "unquoted",
]);

class ConfigFileParser {
  readonly items: ConfigItem[] = [];
  readonly errors: PgError[] = [];
  #reader: ConfigReader;

  constructor(reader: ConfigReader) {
    this.#reader = reader;
  }

  /** Returns false when the file could not be read (the error is recorded). */
  file(path: string, depth: number, strict: boolean, quiet = false): boolean {
    if (depth > MAX_INCLUDE_DEPTH) {
      this.errors.push(
        new PgError(
          ERRCODE.PROGRAM_LIMIT_EXCEEDED,
          `could not open configuration file "${path}": maximum nesting depth exceeded`,
        ),
      );
      return false;
    }
    let text: string | null;
    try {
      text = this.#reader.readFile(path);
    } catch (e) {
      this.errors.push(this.#openError("file", path, e instanceof Error ? e.message : String(e)));
      return false;
    }
    if (text === null) {
      if (strict) {
        this.errors.push(this.#openError("file", path, "No such file or directory"));
        return false;
      }
      if (!quiet) {
        ereport("LOG", `skipping missing configuration file "${path}"`, { category: "guc" });
      }
      return true;
    }
    this.#text(text, path, depth);
    return true;
  }

  directory(path: string, depth: number): void {
    let names: string[] | null;
    try {
      names = this.#reader.readDir(path);
    } catch (e) {
      this.errors.push(this.#openError("directory", path, e instanceof Error ? e.message : ""));
      return;
    }
    if (names === null) {
      this.errors.push(this.#openError("directory", path, "No such file or directory"));
      return;
    }
    const files = names
      .filter((n) => !n.startsWith(".") && n.length > 5 && n.endsWith(".conf"))
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const name of files) {
      if (!this.file(`${path.replace(/\/+$/, "")}/${name}`, depth + 1, true)) return;
    }
  }

  #openError(what: "file" | "directory", path: string, reason: string): PgError {
    return new PgError(
      reason === "No such file or directory" ? UNDEFINED_FILE : ERRCODE.CONFIG_FILE_ERROR,
      `could not open configuration ${what} "${path}": ${reason}`,
    );
  }

  #text(text: string, file: string, depth: number): void {
    const lines = text.split("\n");
    let syntaxErrors = 0;
    for (let n = 0; n < lines.length; n++) {
      const lineNo = n + 1;
      const tokens = tokenize(lines[n]!);
      if (tokens.length === 0) continue;
      const bad = this.#line(tokens, file, lineNo, depth);
      if (bad === null) continue;
      this.errors.push(bad);
      if (++syntaxErrors >= MAX_SYNTAX_ERRORS) {
        this.errors.push(
          new PgError(
            ERRCODE.PROGRAM_LIMIT_EXCEEDED,
            `too many syntax errors found, abandoning file "${file}"`,
          ),
        );
        return;
      }
    }
  }

  /** Handles one non-empty line; returns its syntax error, if any. */
  #line(tokens: Token[], file: string, line: number, depth: number): PgError | null {
    const [first] = tokens;
    if (first === undefined || (first.kind !== "id" && first.kind !== "qualified_id")) {
      return syntaxError(file, line, first);
    }
    let i = 1;
    if (tokens[i]?.kind === "equals") i++;
    const valueToken = tokens[i];
    if (valueToken === undefined || !valueKinds.has(valueToken.kind)) {
      return syntaxError(file, line, valueToken);
    }
    if (tokens[i + 1] !== undefined) return syntaxError(file, line, tokens[i + 1]);
    const value = valueToken.kind === "string" ? unquote(valueToken.text) : valueToken.text;
    const name = first.text;
    switch (name.toLowerCase()) {
      case "include_dir":
        this.directory(resolveConfigPath(value, file), depth);
        break;
      case "include_if_exists":
        this.file(resolveConfigPath(value, file), depth + 1, false);
        break;
      case "include":
        this.file(resolveConfigPath(value, file), depth + 1, true);
        break;
      default:
        this.items.push({ name, value, file, line });
    }
    return null;
  }
}

/**
 * Reads a configuration file and everything it includes, then each of
 * `after` that exists, as if included at its end (postgresql.auto.conf;
 * a missing one is not logged).
 */
export function parseConfigFile(
  path: string,
  reader: ConfigReader,
  after: readonly string[] = [],
): ParseResult {
  const parser = new ConfigFileParser(reader);
  parser.file(path, 0, true);
  for (const p of after) parser.file(p, 0, false, true);
  return { items: parser.items, errors: parser.errors };
}
