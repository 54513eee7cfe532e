/**
 * The names a session's statements reach in the one backend. naming.ts
 * gives each session's prepared statements and WITH HOLD cursors engine
 * names of their own (`pgts<id>.<random>:name`, enginenames.ts) in the
 * statements it reads from the client, and keeps its LISTEN channels apart
 * (notify.ts). What it cannot
 * read is checked here, in the backend, on every utility statement after
 * parse analysis (guard.ts's onUtilityStatement), however it was sent:
 *
 * - A name under another session's prefix (`FETCH ALL FROM "pgts1.x2k…:c"`,
 *   `EXECUTE "pgts1.x2k…:p"`, from the client or in a function) is another
 *   session's cursor or statement: refused as PostgreSQL refuses a name
 *   its backend does not have (34000, 26000).
 * - Inside a function or a DO block (a statement whose source text is not
 *   the client's query, `debug_query_string`), the statements that would
 *   act on the backend's state rather than the session's are refused with
 *   0A000: LISTEN and UNLISTEN (the backend's channels are every
 *   session's), PREPARE, DEALLOCATE ALL, CLOSE ALL and DECLARE … WITH HOLD
 *   (unprefixed, seen by every session; or closing theirs).
 *
 * pgts's own work (no session running) is never refused.
 */

import { isEngineName } from "./enginenames.ts";
import { onUtilityStatement, parsedStatement, type WasmTools } from "./wasmtools.ts";

/** ParseState.p_sourcetext (parse_node.h), after p_parentstate. */
const PSTATE_SOURCETEXT = 4;
/** DeclareCursorStmt.options's CURSOR_OPT_HOLD (parsenodes.h). */
const CURSOR_OPT_HOLD = 0x0020;
/** DeclareCursorStmt.options, after portalname. */
const DECLARE_OPTIONS = 8;

interface Probe {
  readonly tag: number;
  /** Where the statement's name (a char *, null for ALL or *) is. */
  readonly nameAt: number;
}

const NESTED_DETAIL =
  "pgts runs every session on one PGlite backend and keeps each session's LISTEN channels," +
  " prepared statements and WITH HOLD cursors apart by the statements it reads from the client;" +
  " one run inside a function or a DO block would act for every session.";

export function installPortalNameGuard(
  tools: WasmTools,
  runningPrefix: () => string | null,
): void {
  const ex = tools.ex as typeof tools.ex & { debug_query_string: WebAssembly.Global };
  if (!(ex.debug_query_string instanceof WebAssembly.Global)) {
    throw new Error("PGlite does not export debug_query_string");
  }
  const debugQueryString = ex.debug_query_string.value as number;
  // Each statement's node tag, and where its name is, from PostgreSQL's own parser.
  const probe = (sql: string): Probe => {
    const stmt = parsedStatement(tools, sql);
    const v = tools.view();
    for (let at = 4; at < 32; at += 4) {
      const p = v.getUint32(stmt + at, true);
      if (p !== 0 && p < v.byteLength && tools.readCString(p) === "pgts_probe") {
        return { tag: v.getUint32(stmt, true), nameAt: at };
      }
    }
    throw new Error(`PGlite's parse node of "${sql}" has an unknown layout`);
  };
  const cursorNamed = [
    probe("FETCH 1 FROM pgts_probe"),
    probe("CLOSE pgts_probe"),
    probe("DECLARE pgts_probe CURSOR WITH HOLD FOR SELECT 1"),
  ];
  const [, close, declare] = cursorNamed;
  const statementNamed = [
    probe("PREPARE pgts_probe AS SELECT 1"),
    probe("EXECUTE pgts_probe"),
    probe("DEALLOCATE pgts_probe"),
  ];
  const [prepare, , deallocate] = statementNamed;
  const listen = probe("LISTEN pgts_probe");
  const unlisten = probe("UNLISTEN pgts_probe");
  const tags = [...cursorNamed, ...statementNamed, listen, unlisten].map((p) => p.tag);
  if (new Set(tags).size !== tags.length) {
    throw new Error("PGlite's cursor, statement and LISTEN parse nodes share a node tag");
  }
  const v0 = tools.view();
  const held = parsedStatement(tools, "DECLARE pgts_probe CURSOR WITH HOLD FOR SELECT 1");
  const notHeld = parsedStatement(tools, "DECLARE pgts_probe CURSOR FOR SELECT 1");
  if (
    (v0.getInt32(held + DECLARE_OPTIONS, true) & CURSOR_OPT_HOLD) === 0 ||
    (v0.getInt32(notHeld + DECLARE_OPTIONS, true) & CURSOR_OPT_HOLD) !== 0
  ) {
    throw new Error("PGlite's DeclareCursorStmt has an unknown layout");
  }

  const nameOf = (stmt: number, p: Probe): string | null => {
    const at = tools.view().getUint32(stmt + p.nameAt, true);
    return at === 0 ? null : tools.readCString(at);
  };
  const nested = (what: string): never =>
    tools.raise(
      "0A000",
      `${what} inside a function or a DO block is not supported by the embedded engine`,
      NESTED_DETAIL,
      { hint: "Send it as a statement of its own." },
    ) as never;

  onUtilityStatement(tools, (stmt, pstate) => {
    const prefix = runningPrefix();
    if (prefix === null) return;
    const view = tools.view();
    const tag = view.getUint32(stmt, true);
    const cursor = cursorNamed.find((p) => p.tag === tag);
    const statement = cursor === undefined ? statementNamed.find((p) => p.tag === tag) : undefined;
    const probeOf = cursor ?? statement;
    if (probeOf === undefined && tag !== listen.tag && tag !== unlisten.tag) return;
    if (probeOf !== undefined) {
      const name = nameOf(stmt, probeOf);
      if (name !== null && isEngineName(name) && !name.startsWith(prefix)) {
        if (cursor !== undefined) {
          tools.raise("34000", `cursor "${name}" does not exist`);
        } else tools.raise("26000", `prepared statement "${name}" does not exist`);
      }
    }
    const source = view.getUint32(pstate + PSTATE_SOURCETEXT, true);
    if (source === view.getUint32(debugQueryString, true)) return;
    if (tag === listen.tag) nested("LISTEN");
    if (tag === unlisten.tag) nested("UNLISTEN");
    if (tag === prepare!.tag) nested("PREPARE");
    if (tag === deallocate!.tag && nameOf(stmt, deallocate!) === null) nested("DEALLOCATE ALL");
    if (tag === close!.tag && nameOf(stmt, close!) === null) nested("CLOSE ALL");
    if (
      tag === declare!.tag && (view.getInt32(stmt + DECLARE_OPTIONS, true) & CURSOR_OPT_HOLD) !== 0
    ) {
      nested("DECLARE ... WITH HOLD");
    }
  });
}
