/**
 * Running an HTTP request's queries on an engine session with the extended
 * query protocol: one Parse/Bind/Describe/Execute per query, text
 * parameters and text results, one Sync at the end, so a request costs one
 * round trip to the engine. A transaction (Neon's `queries` batch) is the
 * same input between a BEGIN and a COMMIT; the first error makes the engine
 * skip to the Sync, and the caller rolls back what is left open.
 *
 * It owns nothing: the frontend bytes and the backend message bodies are
 * allocated through the caller's allocator (the run's memory context), and
 * it never decides an HTTP status. Multiple statements in one query are
 * refused by the engine (42601), as they are for any prepared statement.
 */

import type { EngineSession } from "../core/engine/types.ts";
import {
  type Allocator,
  BackendMessageReader,
  BE,
  type FieldDescription,
  MessageWriter,
  type NoticeFields,
  parseCommandComplete,
  parseDataRowText,
  parseErrorResponse,
  parseReadyForQuery,
  parseRowDescription,
  type TransactionStatus,
  writeBind,
  writeDescribe,
  writeExecute,
  writeParse,
  writeQuery,
  writeSync,
} from "../core/protocol/mod.ts";

/** One query of a request, parameters already in text form. */
export interface QueryText {
  readonly query: string;
  readonly params: readonly (string | null)[];
}

/** One executed query: its columns, its rows as text, its command tag. */
export interface QueryOutcome {
  readonly fields: Required<FieldDescription>[];
  readonly rows: (string | null)[][];
  readonly tag: string;
}

export type RunOutcome =
  | { readonly ok: true; readonly results: QueryOutcome[] }
  | { readonly ok: false; readonly error: NoticeFields; readonly status: TransactionStatus };

export interface RunQueriesOptions {
  /** The BEGIN statement that opens the transaction (a batch), or undefined for one query. */
  readonly begin?: string;
  /** Where frontend and backend message bytes are allocated. */
  readonly allocate?: Allocator;
}

/** Builds the frontend messages for `queries`, wrapped in BEGIN/COMMIT when `begin` is given. */
export function encodeQueries(queries: readonly QueryText[], begin?: string): Uint8Array {
  const w = new MessageWriter();
  const simple = (sql: string) => {
    writeParse(w, { name: "", query: sql, paramTypes: [] });
    writeBind(w, { portal: "", statement: "", paramFormats: [], params: [], resultFormats: [] });
    writeExecute(w, { portal: "", maxRows: 0 });
  };
  if (begin !== undefined) simple(begin);
  const encoder = new TextEncoder();
  for (const q of queries) {
    writeParse(w, { name: "", query: q.query, paramTypes: [] });
    writeBind(w, {
      portal: "",
      statement: "",
      paramFormats: [],
      params: q.params.map((p) => p === null ? null : encoder.encode(p)),
      resultFormats: [],
    });
    writeDescribe(w, { target: "P", name: "" });
    writeExecute(w, { portal: "", maxRows: 0 });
  }
  if (begin !== undefined) simple("COMMIT");
  writeSync(w);
  return w.take();
}

/** Runs the queries; an engine error comes back as `ok: false` with its fields. */
export async function runQueries(
  session: EngineSession,
  queries: readonly QueryText[],
  options: RunQueriesOptions = {},
): Promise<RunOutcome> {
  const allocate = options.allocate ?? ((n: number) => new Uint8Array(n));
  const encoded = encodeQueries(queries, options.begin);
  const input = allocate(encoded.length);
  input.set(encoded);
  const reader = new BackendMessageReader({ allocate });
  await session.exec(input, (bytes) => reader.push(bytes));

  const completed: QueryOutcome[] = [];
  let fields: Required<FieldDescription>[] = [];
  let rows: (string | null)[][] = [];
  let error: NoticeFields | null = null;
  let status: TransactionStatus = session.transactionStatus;
  for (let m = reader.read(); m !== null; m = reader.read()) {
    switch (m.type) {
      case BE.RowDescription:
        fields = parseRowDescription(m.body);
        break;
      case BE.DataRow:
        rows.push(parseDataRowText(m.body));
        break;
      case BE.CommandComplete:
      case BE.EmptyQueryResponse:
        completed.push({
          fields,
          rows,
          tag: m.type === BE.CommandComplete ? parseCommandComplete(m.body) : "",
        });
        fields = [];
        rows = [];
        break;
      case BE.ErrorResponse:
        error ??= parseErrorResponse(m.body);
        break;
      case BE.ReadyForQuery:
        status = parseReadyForQuery(m.body);
        break;
      default:
        // ParseComplete, BindComplete, NoData, notices, ParameterStatus:
        // nothing the response carries.
        break;
    }
  }
  if (error !== null) return { ok: false, error, status };
  const results = options.begin === undefined ? completed : completed.slice(1, -1);
  return { ok: true, results };
}

/** Ends whatever transaction a failed run left open, so the session closes clean. */
export async function rollback(session: EngineSession): Promise<void> {
  if (session.transactionStatus === "I") return;
  await session.exec(MessageWriter.encode((w) => writeQuery(w, "ROLLBACK")), () => {});
}
