/**
 * What a client's SQL does that the transaction pool must know, read from
 * the text of a Query or a Parse with the PGlite engine's lexical scanner
 * (`sqlscan.ts`: comments, strings and dollar quotes are skipped, so a
 * keyword inside them never counts):
 *
 * - **settings**: SET, RESET, set_config(), DISCARD: the client's settings
 *   map is read back from the upstream before its connection is released;
 * - **pins**: state that lives on one upstream connection and that pgts
 *   cannot carry to another (LISTEN, SQL-level PREPARE, temporary tables,
 *   session-level advisory locks, WITH HOLD cursors, LOAD): the client keeps
 *   that connection for the rest of its session, as in session mode;
 * - **drops statements**: DISCARD ALL and DEALLOCATE ALL drop the protocol
 *   statements the upstream connection holds, the client's and the cache's.
 * - **read-only**: whether the transaction an input starts is read-only
 *   (`readOnlyInput`, for read_only_routing), from its first statement.
 *
 * Only the statement's first words are looked at (and the text for advisory
 * lock calls): what a function body does is not seen (README.md, Limits).
 */

import { FE } from "../../core/protocol/mod.ts";
import { mightMatter, scanStatements } from "../pglite/sqlscan.ts";
import type { Frame } from "../pglite/wire.ts";

export interface SqlEffects {
  settings: boolean;
  /** Why the client must keep its upstream connection; null when it need not. */
  pin: string | null;
  dropsStatements: boolean;
}

/** What `sqlEffects` returns for a text that does none of these (one shared object). */
export const NONE_EFFECTS: SqlEffects = Object.freeze({
  settings: false,
  pin: null,
  dropsStatements: false,
});
const NONE = NONE_EFFECTS;

const ADVISORY_SESSION_LOCK = /pg_(?:try_)?advisory_lock(?:_shared)?\s*\(/i;

/** The effects of one SQL text; a shared frozen object when it has none. */
export function sqlEffects(sql: string): SqlEffects {
  if (!mightMatter(sql) && !/hold|load|advisory/i.test(sql)) return NONE;
  const e: SqlEffects = { settings: false, pin: null, dropsStatements: false };
  for (const st of scanStatements(sql)) {
    const t = st.tokens;
    const w0 = t[0]?.kind === "word" ? t[0].text : "";
    const w1 = t[1]?.kind === "word" ? t[1].text : "";
    if (st.callsSetConfig) e.settings = true;
    switch (w0) {
      case "set":
      case "reset":
        // SET LOCAL and SET TRANSACTION end with the transaction.
        if (w1 !== "local" && w1 !== "transaction") e.settings = true;
        break;
      case "discard":
        e.settings = true;
        if (w1 === "all") e.dropsStatements = true;
        break;
      case "deallocate":
        if (w1 === "all" || (w1 === "prepare" && t[2]?.text === "all")) e.dropsStatements = true;
        break;
      case "listen":
        e.pin ??= "LISTEN";
        break;
      case "prepare":
        // PREPARE TRANSACTION 'gid' (two-phase commit) names no statement.
        if (!(w1 === "transaction" && t[2]?.kind === "string")) e.pin ??= "PREPARE";
        break;
      case "load":
        e.pin ??= "LOAD";
        break;
      case "declare":
        if (/\bwith\s+hold\b/i.test(sql.slice(st.start, st.end))) e.pin ??= "DECLARE … WITH HOLD";
        break;
      case "create": {
        let i = 1;
        if (t[i]?.text === "or" && t[i + 1]?.text === "replace") i += 2;
        if (t[i]?.text === "global" || t[i]?.text === "local") i++;
        const k = t[i]?.text;
        if (k === "temp" || k === "temporary") e.pin ??= "CREATE TEMPORARY";
        break;
      }
    }
  }
  if (e.pin === null && ADVISORY_SESSION_LOCK.test(sql)) e.pin = "pg_advisory_lock";
  return e.settings || e.pin !== null || e.dropsStatements ? e : NONE;
}

/**
 * Whether the transaction this input starts is read-only, from its first
 * statement (a Query's, or a Parse's): `BEGIN`/`START TRANSACTION` with
 * READ ONLY, or the client's default_transaction_read_only unless READ
 * WRITE is asked for. Statements after the first do not change the choice.
 */
export function readOnlyInput(
  input: Uint8Array,
  frames: Frame[],
  settings: ReadonlyMap<string, string>,
): boolean {
  const first = frames[0];
  let text = "";
  if (first?.type === FE.Query) text = cstringAt(input, first.start + 5, first.end);
  else if (first?.type === FE.Parse) {
    // Parse: the statement's name, then its text.
    const nameEnd = input.indexOf(0, first.start + 5);
    if (nameEnd >= 0 && nameEnd < first.end) text = cstringAt(input, nameEnd + 1, first.end);
  }
  const begin = /^\s*(?:begin|start\s+transaction)\b([^;]*)/i.exec(text);
  if (begin !== null) {
    if (/\bread\s+write\b/i.test(begin[1]!)) return false;
    if (/\bread\s+only\b/i.test(begin[1]!)) return true;
  }
  return settings.get("default_transaction_read_only") === "on";
}

function cstringAt(buf: Uint8Array, start: number, end: number): string {
  let nul = buf.indexOf(0, start);
  if (nul < 0 || nul > end) nul = end;
  return new TextDecoder().decode(buf.subarray(start, nul));
}
