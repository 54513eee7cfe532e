/**
 * Values between JSON and PostgreSQL's text format, as Neon's SQL-over-HTTP
 * proxy converts them, so that `@neondatabase/serverless` reads the same
 * thing from pgts as from Neon.
 *
 * - Parameters: JSON null is SQL NULL, a string is sent as is, booleans,
 *   numbers and objects as their JSON text, and an array as a PostgreSQL
 *   array literal (elements quoted and escaped).
 * - Results: with raw text output every value stays the text the engine
 *   sent. Otherwise bool becomes true/false, int2/int4 and finite
 *   float4/float8 numbers, json/jsonb the parsed value, arrays of known
 *   element types JSON arrays, and everything else (int8, numeric, dates...)
 *   stays a string, so no precision is lost.
 *
 * Pure functions; a malformed array text is reported as a TypeError for the
 * caller to turn into a protocol error.
 */

/** The OIDs this module knows: scalar types it converts, and arrays by element type. */
const OID = {
  bool: 16,
  int2: 21,
  int4: 23,
  float4: 700,
  float8: 701,
  json: 114,
  jsonb: 3802,
} as const;

/** Array type OID → element type OID, for the arrays whose elements are converted. */
const ARRAY_ELEMENT = new Map<number, number>([
  [1000, OID.bool],
  [1005, OID.int2],
  [1007, OID.int4],
  [1021, OID.float4],
  [1022, OID.float8],
  [199, OID.json],
  [3807, OID.jsonb],
  // Arrays whose elements stay strings (they are still JSON arrays).
  [1016, 20], // int8
  [1231, 1700], // numeric
  [1009, 25], // text
  [1015, 1043], // varchar
  [1014, 1042], // bpchar
  [1002, 18], // char
  [1003, 19], // name
  [1028, 26], // oid
  [2951, 2950], // uuid
  [1182, 1082], // date
  [1115, 1114], // timestamp
  [1185, 1184], // timestamptz
  [1183, 1083], // time
  [1187, 1186], // interval
  [1001, 17], // bytea
]);

/** One parameter as the engine reads it (text format), from its JSON form. */
export function paramToText(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return arrayLiteral(value);
  return JSON.stringify(value);
}

function arrayLiteral(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  if (Array.isArray(value)) return `{${value.map(arrayLiteral).join(",")}}`;
  const text = typeof value === "string" ? value : JSON.stringify(value);
  if (typeof value === "string" || typeof value === "object") {
    return `"${text.replace(/["\\]/g, (c) => `\\${c}`)}"`;
  }
  return text;
}

/** A column value as Neon's proxy writes it into the JSON response. */
export function textToJson(text: string, typeOid: number): unknown {
  const element = ARRAY_ELEMENT.get(typeOid);
  if (element !== undefined) return parseArray(text, element);
  return scalarToJson(text, typeOid);
}

function scalarToJson(text: string, typeOid: number): unknown {
  switch (typeOid) {
    case OID.bool:
      return text === "t";
    case OID.int2:
    case OID.int4:
      return Number.parseInt(text, 10);
    case OID.float4:
    case OID.float8: {
      const n = Number(text);
      // NaN and the infinities stay strings: JSON has no way to say them.
      return Number.isFinite(n) ? n : text;
    }
    case OID.json:
    case OID.jsonb:
      return JSON.parse(text);
    default:
      return text;
  }
}

/** Parses array_out's text: `{1,2}`, nested braces, quoted elements, NULL, bounds decoration. */
function parseArray(text: string, element: number): unknown[] {
  let s = text;
  if (s.startsWith("[")) {
    const eq = s.indexOf("=");
    if (eq < 0) throw new TypeError("unbalanced array");
    s = s.slice(eq + 1);
  }
  let at = 0;
  const skipSpace = () => {
    while (at < s.length && /\s/.test(s[at]!)) at++;
  };
  const parseList = (): unknown[] => {
    skipSpace();
    if (s[at] !== "{") throw new TypeError("unbalanced array");
    at++;
    const out: unknown[] = [];
    skipSpace();
    if (s[at] === "}") {
      at++;
      return out;
    }
    for (;;) {
      skipSpace();
      if (s[at] === "{") out.push(parseList());
      else if (s[at] === '"') {
        at++;
        let item = "";
        for (;;) {
          const c = s[at++];
          if (c === undefined) throw new TypeError("unbalanced quoted string");
          if (c === '"') break;
          if (c === "\\") {
            const next = s[at++];
            if (next === undefined) throw new TypeError("unbalanced quoted string");
            item += next;
          } else item += c;
        }
        out.push(scalarToJson(item, element));
      } else {
        let end = at;
        while (end < s.length && s[end] !== "," && s[end] !== "}") end++;
        if (end >= s.length) throw new TypeError("unbalanced array");
        const item = s.slice(at, end).trim();
        at = end;
        out.push(item === "NULL" ? null : scalarToJson(item, element));
      }
      skipSpace();
      if (s[at] === ",") {
        at++;
        continue;
      }
      if (s[at] === "}") {
        at++;
        return out;
      }
      throw new TypeError("unbalanced array");
    }
  };
  const result = parseList();
  skipSpace();
  if (at !== s.length) throw new TypeError("unbalanced array");
  return result;
}
