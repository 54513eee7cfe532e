/**
 * The small SQL that offengine.ts answers without the engine: a tokenizer
 * and parser for exactly its statement shapes (nothing else parses: a
 * comment, another operator, a dollar quote all give null, and the engine
 * answers; a text of comments and semicolons only is the empty query),
 * and the parameter types PostgreSQL's parser would infer for them. Pure
 * functions of the text; no session, no engine.
 */

import { isEmptyQuery } from "./sqlscan.ts";

export const BOOLOID = 16;
export const INT8OID = 20;
export const INT4OID = 23;
export const TEXTOID = 25;
export const OIDOID = 26;
export const NAMEOID = 19;
export const XIDOID = 28;
export const INETOID = 869;
export const TIMESTAMPTZOID = 1184;

/**
 * pg_stat_activity's columns in the view's order (activity.ts), with their
 * types: `SELECT *` lists them so, and a RowDescription gives a column's
 * place in it as its attribute number.
 */
export const COLUMNS: Readonly<Record<string, number>> = {
  datid: OIDOID,
  datname: NAMEOID,
  pid: INT4OID,
  leader_pid: INT4OID,
  usesysid: OIDOID,
  usename: NAMEOID,
  application_name: TEXTOID,
  client_addr: INETOID,
  client_hostname: TEXTOID,
  client_port: INT4OID,
  backend_start: TIMESTAMPTZOID,
  xact_start: TIMESTAMPTZOID,
  query_start: TIMESTAMPTZOID,
  state_change: TIMESTAMPTZOID,
  wait_event_type: TEXTOID,
  wait_event: TEXTOID,
  state: TEXTOID,
  backend_xid: XIDOID,
  backend_xmin: XIDOID,
  query_id: INT8OID,
  query: TEXTOID,
  backend_type: TEXTOID,
};

/**
 * The types a WHERE compares here: integers and OIDs as numbers, text and
 * names as strings. A comparison of another type's column (inet's, a
 * timestamp's) is the engine's.
 */
const COMPARED: ReadonlySet<number> = new Set([INT4OID, OIDOID, TEXTOID, NAMEOID]);

// ---- tokens --------------------------------------------------------------------

type Tok =
  | { k: "word"; v: string }
  | { k: "quoted"; v: string }
  | { k: "int"; v: string }
  | { k: "str"; v: string }
  | { k: "param"; v: number }
  | { k: "op"; v: string };

/** The tokens of `sql`, or null at anything outside the small language here. */
function tokenize(sql: string): Tok[] | null {
  const out: Tok[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < sql.length && /[A-Za-z0-9_$]/.test(sql[j]!)) j++;
      out.push({ k: "word", v: sql.slice(i, j).toLowerCase() });
      i = j;
    } else if (
      /[0-9]/.test(c) ||
      // A negative literal (an argument or a comparand): unary minus on a constant.
      (c === "-" && /[0-9]/.test(sql[i + 1] ?? "") && out.at(-1)?.k === "op")
    ) {
      let j = i + 1;
      while (j < sql.length && /[0-9]/.test(sql[j]!)) j++;
      if (j < sql.length && /[A-Za-z_.]/.test(sql[j]!)) return null;
      out.push({ k: "int", v: sql.slice(i, j) });
      i = j;
    } else if (c === "$") {
      let j = i + 1;
      while (j < sql.length && /[0-9]/.test(sql[j]!)) j++;
      if (j === i + 1) return null; // a dollar quote
      out.push({ k: "param", v: Number(sql.slice(i + 1, j)) });
      i = j;
    } else if (c === "'" || c === '"') {
      let v = "";
      let j = i + 1;
      for (;;) {
        if (j >= sql.length) return null;
        if (sql[j] === c) {
          if (sql[j + 1] === c) {
            v += c;
            j += 2;
            continue;
          }
          break;
        }
        v += sql[j++];
      }
      // A backslash means something else with standard_conforming_strings off.
      if (c === "'" && v.includes("\\")) return null;
      out.push(c === "'" ? { k: "str", v } : { k: "quoted", v });
      i = j + 1;
    } else {
      const two = sql.slice(i, i + 2);
      if (two === "<>" || two === "!=" || two === "::") {
        out.push({ k: "op", v: two });
        i += 2;
      } else if ("(),;=.*".includes(c)) {
        out.push({ k: "op", v: c });
        i++;
      } else return null; // comments, other operators...
    }
  }
  return out;
}

// ---- statements ----------------------------------------------------------------

export type Operand =
  | { t: "col"; name: string }
  | { t: "int"; v: number }
  | { t: "str"; v: string }
  | { t: "param"; n: number }
  | { t: "mypid" };

export interface Call {
  readonly fn: "pg_cancel_backend" | "pg_terminate_backend";
  readonly target: Operand;
  readonly timeout: Operand | null;
}

export interface Item {
  readonly name: string;
  readonly col: string | null;
  readonly call: Call | null;
  /** An integer constant (an int4: `SELECT 1`), or null. */
  readonly lit: number | null;
}

export interface Cond {
  readonly left: Operand;
  readonly op: "=" | "<>" | "like" | "ilike" | "not like" | "not ilike";
  readonly right: Operand;
}

export type Stmt =
  | { kind: "select"; items: Item[]; from: boolean; where: Cond[] }
  | { kind: "show"; name: string }
  | { kind: "empty" };

class Parser {
  #i = 0;
  constructor(readonly toks: Tok[]) {}

  peek(n = 0): Tok | undefined {
    return this.toks[this.#i + n];
  }
  word(v?: string): boolean {
    const t = this.peek();
    if (t?.k !== "word" || (v !== undefined && t.v !== v)) return false;
    this.#i++;
    return true;
  }
  op(v: string): boolean {
    const t = this.peek();
    if (t?.k !== "op" || t.v !== v) return false;
    this.#i++;
    return true;
  }
  take(): Tok | undefined {
    return this.toks[this.#i++];
  }
  /** At the end, after an optional semicolon. */
  end(): boolean {
    this.op(";");
    return this.#i === this.toks.length;
  }
  /** `[pg_catalog.]name`: the name, lowercased; null (nothing consumed) when not a plain name. */
  qualified(): string | null {
    const t0 = this.peek();
    if (t0?.k !== "word") return null;
    if (t0.v === "pg_catalog" && this.peek(1)?.k === "op" && (this.peek(1) as Tok).v === ".") {
      const t2 = this.peek(2);
      if (t2?.k !== "word") return null;
      this.#i += 3;
      return t2.v;
    }
    this.#i++;
    return t0.v;
  }
}

export function parseStatement(sql: string): Stmt | null {
  if (isEmptyQuery(sql)) return { kind: "empty" };
  const toks = tokenize(sql);
  if (toks === null) return null;
  const p = new Parser(toks);
  if (p.word("show")) {
    const t = p.take();
    if (t?.k !== "word" || !p.end()) return null;
    return { kind: "show", name: t.v };
  }
  if (!p.word("select")) return null;
  const items: Item[] = [];
  do {
    // `*`: every column of the view, in its order.
    if (p.op("*")) {
      for (const col of Object.keys(COLUMNS)) items.push({ name: col, col, call: null, lit: null });
      continue;
    }
    const item = parseItem(p);
    if (item === null) return null;
    items.push(item);
  } while (p.op(","));
  let from = false;
  const where: Cond[] = [];
  if (p.word("from")) {
    if (p.qualified() !== "pg_stat_activity") return null;
    from = true;
    if (p.word("where")) {
      do {
        const c = parseCond(p);
        if (c === null) return null;
        where.push(c);
      } while (p.word("and"));
    }
  }
  if (!p.end()) return null;
  return { kind: "select", items, from, where };
}

function parseItem(p: Parser): Item | null {
  let call: Call | null = null;
  let col: string | null = null;
  let lit: number | null = null;
  const first = p.peek();
  if (first?.k === "int") {
    // An int4 constant: what is larger is another type.
    p.take();
    lit = Number(first.v);
    if (!(lit <= 2147483647 && lit >= -2147483647)) return null;
  } else if (p.op("(")) {
    // (SELECT pg_cancel_backend(pid)): a scalar subquery of one call.
    if (!p.word("select")) return null;
    call = parseCall(p);
    if (call === null || !p.op(")")) return null;
  } else {
    const t = p.peek();
    const next = p.peek(1);
    if (
      t?.k === "word" && Object.hasOwn(COLUMNS, t.v) && !(next?.k === "op" && "(.".includes(next.v))
    ) {
      col = t.v;
      p.take();
    } else {
      call = parseCall(p);
      if (call === null) return null;
    }
  }
  let name = lit !== null ? "?column?" : col ?? call!.fn;
  if (p.word("as")) {
    const a = p.take();
    if (a?.k !== "word" && a?.k !== "quoted") return null;
    name = a.v;
  } else {
    const a = p.peek();
    if (a?.k === "quoted" || (a?.k === "word" && a.v !== "from")) {
      p.take();
      name = a.v;
    }
  }
  return { name, col, call, lit };
}

function parseCall(p: Parser): Call | null {
  const fn = p.qualified();
  if (fn !== "pg_cancel_backend" && fn !== "pg_terminate_backend") return null;
  if (!p.op("(")) return null;
  const target = parseArg(p, ["int", "int4", "integer"]);
  if (target === null) return null;
  let timeout: Operand | null = null;
  if (fn === "pg_terminate_backend" && p.op(",")) {
    timeout = parseArg(p, ["int", "int4", "integer", "int8", "bigint"]);
    if (timeout === null || timeout.t === "col" || timeout.t === "mypid") return null;
  }
  if (!p.op(")")) return null;
  return { fn, target, timeout };
}

/** An argument, with an optional cast to one of `casts`. */
function parseArg(p: Parser, casts: readonly string[]): Operand | null {
  const o = parseOperand(p);
  if (o === null || o.t === "str") return null;
  if (o.t === "col" && o.name !== "pid") return null;
  if (p.op("::")) {
    const t = p.take();
    if (t?.k !== "word" || !casts.includes(t.v)) return null;
  }
  return o;
}

function parseOperand(p: Parser): Operand | null {
  const t = p.peek();
  if (t === undefined) return null;
  if (t.k === "int") {
    p.take();
    const v = Number(t.v);
    return Number.isSafeInteger(v) ? { t: "int", v } : null;
  }
  if (t.k === "str") {
    p.take();
    return { t: "str", v: t.v };
  }
  if (t.k === "param") {
    p.take();
    return t.v >= 1 && t.v <= 64 ? { t: "param", n: t.v } : null;
  }
  if (t.k === "word") {
    const save = p.peek(1);
    if (Object.hasOwn(COLUMNS, t.v) && !(save?.k === "op" && save.v === "(")) {
      p.take();
      return { t: "col", name: t.v };
    }
    const fn = p.qualified();
    if (fn === "pg_backend_pid" && p.op("(") && p.op(")")) return { t: "mypid" };
  }
  return null;
}

function parseCond(p: Parser): Cond | null {
  const left = parseOperand(p);
  if (left === null) return null;
  let op: Cond["op"];
  if (p.op("=")) op = "=";
  else if (p.op("<>") || p.op("!=")) op = "<>";
  else if (p.word("like")) op = "like";
  else if (p.word("ilike")) op = "ilike";
  else if (p.word("not")) {
    if (p.word("like")) op = "not like";
    else if (p.word("ilike")) op = "not ilike";
    else return null;
  } else return null;
  const right = parseOperand(p);
  return right === null ? null : { left, op, right };
}

// ---- types and parameters -----------------------------------------------------------

/** The type of a column or pg_backend_pid(); null for literals and parameters. */
export function typeOf(o: Operand): number | null {
  if (o.t === "col") return COLUMNS[o.name]!;
  if (o.t === "mypid" || o.t === "int") return INT4OID;
  return null;
}

/**
 * Each parameter's type, as PostgreSQL's parser would infer it here, or
 * null when the statement is outside what this file evaluates (a literal
 * compared with a column of another type, say).
 */
export function inferParams(stmt: Stmt & { kind: "select" }): Map<number, number> | null {
  const types = new Map<number, number>();
  const give = (o: Operand, t: number): boolean => {
    if (o.t !== "param") return true;
    const had = types.get(o.n);
    if (had !== undefined && had !== t) return false;
    types.set(o.n, t);
    return true;
  };
  for (const item of stmt.items) {
    const c = item.call;
    if (c === null) {
      if (!stmt.from && item.lit === null) return null;
      continue;
    }
    if (!stmt.from && c.target.t === "col") return null;
    if (!give(c.target, INT4OID)) return null;
    if (c.timeout !== null && !give(c.timeout, INT8OID)) return null;
  }
  for (const w of stmt.where) {
    const lt = typeOf(w.left);
    const rt = typeOf(w.right);
    if ((lt !== null && !COMPARED.has(lt)) || (rt !== null && !COMPARED.has(rt))) return null;
    if (w.op !== "=" && w.op !== "<>") {
      // LIKE: a text-like column against text.
      if (lt !== TEXTOID && lt !== NAMEOID) return null;
      if (w.right.t === "int" || w.right.t === "mypid" || rt === INT4OID || rt === OIDOID) {
        return null;
      }
      if (!give(w.right, TEXTOID)) return null;
      continue;
    }
    const known = lt ?? rt;
    if (known === null) return null; // literal = literal
    const numeric = known === INT4OID || known === OIDOID;
    for (const [side, other] of [[w.left, rt], [w.right, lt]] as const) {
      const t = typeOf(side);
      if (t !== null) {
        const sideNumeric = t === INT4OID || t === OIDOID;
        if (sideNumeric !== numeric) return null;
      } else if (side.t === "int" && !numeric) return null;
      else if (side.t === "str" && numeric && !/^\s*[+-]?\d+\s*$/.test(side.v)) return null;
      else if (!give(side, other ?? known)) return null;
    }
  }
  return types;
}

export type Value = number | string | bigint | null;

/** A parameter's value in `format`, or undefined when it is not one this file reads. */
export function paramValue(
  raw: Uint8Array | null,
  type: number,
  format: number,
): Value | undefined {
  if (raw === null) return null;
  if (format === 1) {
    const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    if (type === INT4OID) return raw.length === 4 ? v.getInt32(0) : undefined;
    if (type === INT8OID) return raw.length === 8 ? v.getBigInt64(0) : undefined;
    return new TextDecoder("utf-8", { fatal: true }).decode(raw);
  }
  const s = new TextDecoder().decode(raw);
  if (type === INT4OID || type === INT8OID) {
    if (!/^\s*[+-]?\d+\s*$/.test(s)) return undefined;
    const n = BigInt(s.trim());
    if (type === INT4OID) {
      return n >= -2147483648n && n <= 2147483647n ? Number(n) : undefined;
    }
    return n >= -(2n ** 63n) && n < 2n ** 63n ? n : undefined;
  }
  return s;
}
