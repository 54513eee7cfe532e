/**
 * Units of integer parameters: the memory and time unit tables of guc.c, the
 * rules for reading a number with an optional unit ("8kB", "1.5min", "0x10"),
 * and the SHOW form that picks the largest unit dividing the value evenly.
 *
 * A parameter stores its value in its base unit (kB for shared_buffers-like
 * sizes, ms/s/min for times); everything here converts to and from that base.
 * Unit names are case-sensitive, as in PostgreSQL ("kB", not "KB"). Pure
 * functions only; nothing here reports errors, callers turn `null` results
 * into PostgreSQL's messages.
 */

/** Base units an integer parameter can have (PostgreSQL's GUC_UNIT_* flags). */
export type GucUnit = "B" | "kB" | "MB" | "8kB" | "ms" | "s" | "min";

export type UnitKind = "memory" | "time";

interface Conversion {
  readonly unit: string;
  /** How many base units one `unit` is. */
  readonly multiplier: number;
}

// Ordered from the greatest unit to the smallest: the SHOW form takes the
// first one that divides the value evenly.
const memoryUnits = ["TB", "GB", "MB", "kB", "B"] as const;
const memoryBytes: Record<string, number> = {
  TB: 1024 ** 4,
  GB: 1024 ** 3,
  MB: 1024 ** 2,
  kB: 1024,
  B: 1,
};
const timeUnits = ["d", "h", "min", "s", "ms", "us"] as const;
const timeMicros: Record<string, number> = {
  d: 86_400_000_000,
  h: 3_600_000_000,
  min: 60_000_000,
  s: 1_000_000,
  ms: 1_000,
  us: 1,
};

const baseSize: Record<GucUnit, number> = {
  B: 1,
  kB: 1024,
  MB: 1024 ** 2,
  "8kB": 8192,
  ms: 1_000,
  s: 1_000_000,
  min: 60_000_000,
};

export function unitKind(unit: GucUnit): UnitKind {
  switch (unit) {
    case "B":
    case "kB":
    case "MB":
    case "8kB":
      return "memory";
    case "ms":
    case "s":
    case "min":
      return "time";
    default: {
      const never: never = unit;
      throw new TypeError(`Unknown unit ${String(never)}`);
    }
  }
}

function conversions(base: GucUnit): Conversion[] {
  const kind = unitKind(base);
  const names = kind === "memory" ? memoryUnits : timeUnits;
  const table = kind === "memory" ? memoryBytes : timeMicros;
  return names.map((unit) => ({ unit, multiplier: table[unit]! / baseSize[base] }));
}

/** PostgreSQL's hint when a unit is not recognised. */
export function unitsHint(base: GucUnit): string {
  return unitKind(base) === "memory"
    ? 'Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".'
    : 'Valid units for this parameter are "us", "ms", "s", "min", "h", and "d".';
}

export type IntParse =
  | { readonly ok: true; readonly value: number }
  | { readonly ok: false; readonly hint?: string };

/** The largest int setting (C's INT_MAX, as guc.c bounds them). */
export const INT_MAX = 2147483647;
const INT_MIN = -2147483648;

// C's strtol with base 0: optional sign, then hex (0x), octal (leading 0) or decimal.
const strtolRe = /^\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)/;
const strtodRe = /^\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/;

function strtol(text: string): { value: number; rest: string } | null {
  const m = strtolRe.exec(text);
  if (m === null) return null;
  const digits = m[2]!;
  let value: number;
  if (/^0[xX]/.test(digits)) value = parseInt(digits.slice(2), 16);
  else if (digits.length > 1 && digits.startsWith("0")) value = parseInt(digits, 8);
  else value = parseInt(digits, 10);
  return { value: m[1] === "-" ? -value : value, rest: text.slice(m[0].length) };
}

/**
 * Reads an integer with an optional unit, the way PostgreSQL's parse_int does:
 * a fractional number is allowed and rounded after conversion to the base
 * unit; whitespace may separate number and unit; a unit is only accepted when
 * the parameter has one.
 */
export function parseIntWithUnit(text: string, base: GucUnit | undefined): IntParse {
  let num: number;
  let rest: string;
  const asInt = strtol(text);
  const next = asInt === null ? text.trimStart()[0] : asInt.rest[0];
  if (
    asInt === null || next === "." || next === "e" || next === "E" ||
    !Number.isSafeInteger(asInt.value)
  ) {
    const m = strtodRe.exec(text);
    if (m === null) return { ok: false };
    num = Number(m[0].trim());
    rest = text.slice(m[0].length);
  } else {
    num = asInt.value;
    rest = asInt.rest;
  }
  rest = rest.trimStart();
  if (rest !== "") {
    if (base === undefined) return { ok: false };
    const converted = convertToBase(num, rest, base);
    if (converted === null) return { ok: false, hint: unitsHint(base) };
    num = converted;
  }
  num = roundHalfEven(num);
  if (!Number.isFinite(num) || num > INT_MAX || num < INT_MIN) {
    return { ok: false, hint: "Value exceeds integer range." };
  }
  return { ok: true, value: num };
}

// C's rint() under the default rounding mode rounds halfway cases to even.
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function convertToBase(value: number, unitText: string, base: GucUnit): number | null {
  const m = /^([A-Za-z]+)\s*$/.exec(unitText);
  if (m === null) return null;
  const table = conversions(base);
  const i = table.findIndex((c) => c.unit === m[1]);
  if (i < 0) return null;
  const converted = value * table[i]!.multiplier;
  // A fractional amount ("30.1GB") is first rounded to a whole number of the
  // next smaller unit, so the result does not depend on float noise.
  const smaller = table[i + 1];
  return smaller === undefined
    ? converted
    : roundHalfEven(converted / smaller.multiplier) * smaller.multiplier;
}

/**
 * The SHOW form of an integer in base units: the largest unit that divides it
 * evenly ("60000" ms shows as "1min"); zero and negative values carry no unit.
 */
export function formatWithUnit(value: number, base: GucUnit | undefined): string {
  if (base === undefined || value <= 0) return String(value);
  for (const c of conversions(base)) {
    if (c.multiplier <= 1) return `${roundHalfEven(value / c.multiplier)}${c.unit}`;
    if (value % c.multiplier === 0) return `${value / c.multiplier}${c.unit}`;
  }
  return String(value);
}

/** How a unit name is spelled in range errors ("8kB", "ms"). */
export function unitName(base: GucUnit): string {
  return base;
}

/** Converts a base-unit value to milliseconds (time units) or bytes (memory units). */
export function toMilliseconds(value: number, base: GucUnit): number {
  if (unitKind(base) !== "time") throw new TypeError(`Unit ${base} is not a time unit`);
  return value * (baseSize[base] / 1000);
}

export function toBytes(value: number, base: GucUnit): number {
  if (unitKind(base) !== "memory") throw new TypeError(`Unit ${base} is not a memory unit`);
  return value * baseSize[base];
}
