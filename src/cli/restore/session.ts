/**
 * One connection running a script's statements, one simple Query each, as
 * psql does: CopyInResponse is answered with the script's COPY data,
 * notices and warnings are reported with the script line, and the first
 * ErrorResponse ends the run. Statements may be sent ahead of their answers
 * (`window` > 1) only inside a single transaction, where an error aborts
 * everything after it anyway; otherwise each waits for the previous one's
 * ReadyForQuery, so nothing runs after a failed statement.
 */

import type { Connection } from "../../core/adapter.ts";
import {
  BE,
  MessageWriter,
  parseErrorResponse,
  writeCopyData,
  writeCopyDone,
  writeQuery,
} from "../../core/protocol/mod.ts";
import type { NoticeFields } from "../../core/protocol/backend-reader.ts";
import { UpstreamInput } from "../../engines/upstream/connect.ts";
import { FE } from "../../core/protocol/constants.ts";
import { concatBytes } from "../../core/protocol/msgbuf.ts";

/** What the server said about one statement. */
export interface StatementError {
  readonly fields: NoticeFields;
  readonly line: number;
  readonly text: string;
}

/** Statement text with the script line it started on. */
export interface Sent {
  readonly text: string;
  readonly line: number;
  /** The COPY data, when the statement is `COPY … FROM stdin`. */
  readonly copyData?: AsyncIterable<string>;
}

const encoder = new TextEncoder();
/** COPY data is sent in CopyData messages of about this many bytes. */
const COPY_CHUNK = 64 * 1024;

export class ScriptSession {
  readonly #conn: Connection;
  readonly #input: UpstreamInput;
  readonly #onNotice: (fields: NoticeFields, line: number) => void;
  /** Sent statements whose ReadyForQuery has not come yet, oldest first. */
  readonly #inFlight: Sent[] = [];
  #error: StatementError | null = null;
  statements = 0;
  copyRows = 0;

  constructor(
    conn: Connection,
    options: { rest: Uint8Array; onNotice: (fields: NoticeFields, line: number) => void },
  ) {
    this.#conn = conn;
    this.#input = new UpstreamInput(conn, options.rest);
    this.#onNotice = options.onNotice;
  }

  /** The first error, once one came. */
  get error(): StatementError | null {
    return this.#error;
  }

  /**
   * Sends a statement; waits until at most `window - 1` are unanswered
   * (COPY FROM stdin always waits: its data follows its CopyInResponse).
   */
  async run(statement: Sent, window = 1): Promise<void> {
    this.#conn.write(MessageWriter.encode((w) => writeQuery(w, statement.text)));
    this.#inFlight.push(statement);
    this.statements++;
    const limit = statement.copyData !== undefined ? 0 : window - 1;
    while (this.#inFlight.length > limit && this.#error === null) await this.#answer();
  }

  /** Waits for every statement sent so far. */
  async finish(): Promise<void> {
    while (this.#inFlight.length > 0) await this.#answer();
  }

  /** Reads the answer to the oldest statement in flight, up to its ReadyForQuery. */
  async #answer(): Promise<void> {
    const current = this.#inFlight[0] as Sent;
    for (;;) {
      const m = await this.#input.next();
      if (m === null) throw new Error("server closed the connection unexpectedly");
      switch (m.type) {
        case BE.ErrorResponse:
          this.#error ??= {
            fields: parseErrorResponse(m.body),
            line: current.line,
            text: current.text,
          };
          break;
        case BE.NoticeResponse:
          this.#onNotice(parseErrorResponse(m.body), current.line);
          break;
        case BE.CopyInResponse:
          await this.#sendCopy(current);
          break;
        case BE.ReadyForQuery:
          this.#inFlight.shift();
          return;
        default:
          // RowDescription, DataRow, CommandComplete, ParameterStatus...: nothing to do.
          break;
      }
    }
  }

  async #sendCopy(statement: Sent): Promise<void> {
    const parts: Uint8Array[] = [];
    let size = 0;
    const flush = async () => {
      if (size === 0) return;
      const chunk = concatBytes(parts, size);
      parts.length = 0;
      size = 0;
      if (!this.#conn.write(MessageWriter.encode((w) => writeCopyData(w, chunk)))) {
        await this.#conn.drained();
      }
    };
    for await (const line of statement.copyData ?? []) {
      const bytes = encoder.encode(`${line}\n`);
      parts.push(bytes);
      size += bytes.length;
      this.copyRows++;
      if (size >= COPY_CHUNK) await flush();
    }
    await flush();
    this.#conn.write(MessageWriter.encode((w) => writeCopyDone(w)));
  }

  /** Sends Terminate and closes. */
  close(): void {
    this.#conn.write(new Uint8Array([FE.Terminate, 0, 0, 0, 4]));
    this.#conn.end();
  }
}
