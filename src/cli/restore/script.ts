/**
 * An SQL script read the way psql reads one: statements end at a semicolon
 * outside quotes ('…', E'…', "…", $tag$…$tag$) and comments (-- and nested
 * /* *\/); a line starting with a backslash between statements is a
 * meta-command; after `COPY … FROM stdin` the lines up to `\.` are the
 * data. Lines are pulled one at a time, so a script of any size is read in
 * constant memory (except one statement's text). Each item carries the line
 * it starts on, for error messages.
 */

export type ScriptItem =
  | { readonly kind: "sql"; readonly text: string; readonly line: number }
  | {
    readonly kind: "meta";
    readonly command: string;
    readonly args: string;
    readonly line: number;
  };

const IDENT = /[A-Za-z0-9_\u0080-\uffff]/;
const DOLLAR_TAG = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/;

/** Whether a complete statement is a COPY reading from the script itself. */
export function isCopyFromStdin(sql: string): boolean {
  const body = sql.replace(/^(\s|--[^\n]*\n)*/, "");
  return /^COPY\b[\s\S]*\bFROM\s+stdin\b/i.test(body);
}

export class ScriptReader {
  readonly #lines: AsyncIterator<string>;
  #lineNo = 0;
  /** Text of the current line not consumed yet (a line may hold several statements). */
  #rest: string | null = null;
  #restLine = 0;

  constructor(lines: AsyncIterable<string>) {
    this.#lines = lines[Symbol.asyncIterator]();
  }

  /** The line number of the last line read. */
  get line(): number {
    return this.#lineNo;
  }

  async #nextLine(): Promise<string | null> {
    const r = await this.#lines.next();
    if (r.done) return null;
    this.#lineNo++;
    return r.value;
  }

  /** The next statement or meta-command; null at the end of the script. */
  async next(): Promise<ScriptItem | null> {
    let text = "";
    let startLine = 0;
    let quote: "'" | "E" | '"' | null = null;
    let dollar: string | null = null;
    let comment = 0;
    for (;;) {
      let line: string | null;
      let lineNo: number;
      if (this.#rest !== null) {
        line = this.#rest;
        lineNo = this.#restLine;
        this.#rest = null;
      } else {
        line = await this.#nextLine();
        lineNo = this.#lineNo;
      }
      if (line === null) {
        return text.trim() === "" || onlyComments(text)
          ? null
          : { kind: "sql", text: text.trim(), line: startLine };
      }
      // Only a backslash line costs a look at the statement so far.
      const between = line.startsWith("\\") && quote === null && dollar === null &&
        comment === 0 && (text.trim() === "" || onlyComments(text));
      if (between) {
        const m = /^\\(\S*)\s*(.*)$/.exec(line);
        return { kind: "meta", command: m?.[1] ?? "", args: (m?.[2] ?? "").trim(), line: lineNo };
      }
      let i = 0;
      while (i < line.length) {
        const c = line[i] as string;
        if (comment > 0) {
          if (line.startsWith("*/", i)) {
            comment--;
            i += 2;
          } else if (line.startsWith("/*", i)) {
            comment++;
            i += 2;
          } else i++;
          continue;
        }
        if (dollar !== null) {
          if (line.startsWith(dollar, i)) {
            i += dollar.length;
            dollar = null;
          } else i++;
          continue;
        }
        if (quote !== null) {
          if (quote === "E" && c === "\\") i += 2;
          else if ((quote === '"' && c === '"') || (quote !== '"' && c === "'")) {
            quote = null;
            i++;
          } else i++;
          continue;
        }
        if (startLine === 0 && !/\s/.test(c) && !line.startsWith("--", i)) startLine = lineNo;
        if (line.startsWith("--", i)) break;
        if (line.startsWith("/*", i)) {
          comment = 1;
          i += 2;
          continue;
        }
        if (c === "'") {
          const prev = line[i - 1];
          const escaped = (prev === "E" || prev === "e") && !IDENT.test(line[i - 2] ?? " ");
          quote = escaped ? "E" : "'";
          i++;
          continue;
        }
        if (c === '"') {
          quote = '"';
          i++;
          continue;
        }
        if (c === "$" && !IDENT.test(line[i - 1] ?? " ")) {
          const tag = DOLLAR_TAG.exec(line.slice(i))?.[0];
          if (tag !== undefined) {
            dollar = tag;
            i += tag.length;
            continue;
          }
        }
        if (c === ";") {
          const statement = text + line.slice(0, i + 1);
          const rest = line.slice(i + 1);
          if (rest.trim() !== "") {
            this.#rest = rest;
            this.#restLine = lineNo;
          }
          if (onlyComments(statement.slice(0, -1))) {
            // An empty statement: keep reading.
            text = "";
            startLine = 0;
            line = rest;
            i = 0;
            this.#rest = null;
            continue;
          }
          return { kind: "sql", text: statement.trim(), line: startLine };
        }
        i++;
      }
      text += `${line}\n`;
    }
  }

  /** The data lines after `COPY … FROM stdin`, up to (not including) `\.`. */
  async *copyData(): AsyncGenerator<string> {
    if (this.#rest !== null) {
      // Text after the COPY statement's semicolon on the same line is the first data line.
      const first = this.#rest;
      this.#rest = null;
      if (isEndOfCopy(first)) return;
      yield first;
    }
    for (;;) {
      const line = await this.#nextLine();
      if (line === null || isEndOfCopy(line)) return;
      yield line;
    }
  }
}

/** `\.`, the end of COPY data (a CRLF script has it as "\\.\r", as psql accepts). */
function isEndOfCopy(line: string): boolean {
  return line === "\\." || line === "\\.\r";
}

/**
 * The lines of a byte stream, split at "\n" only: a carriage return is part
 * of the line (psql keeps one inside a string literal; node:readline would
 * end the line there).
 */
export async function* splitLines(
  chunks: AsyncIterable<Uint8Array | string>,
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let partial = "";
  for await (const chunk of chunks) {
    const text = partial +
      (typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true }));
    let start = 0;
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
      yield text.slice(start, nl);
      start = nl + 1;
    }
    partial = text.slice(start);
  }
  partial += decoder.decode();
  if (partial !== "") yield partial;
}

/** Whether text holds nothing but whitespace and comments. */
function onlyComments(text: string): boolean {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/--[^\n]*/g, "").trim() === "";
}
