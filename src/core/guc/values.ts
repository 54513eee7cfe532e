/**
 * Parameter definitions and value checking: the pgts counterpart of the
 * config_generic/config_int/... structs and parse_and_validate_value in
 * guc.c. A definition says what a parameter is (type, context, boot value,
 * range, unit, allowed values); `parseValue` turns the text a user wrote into
 * the typed value or a PgError carrying PostgreSQL's message for the failure.
 */

import { PgError } from "../elog.ts";
import {
  convertToBase,
  formatWithUnit,
  type GucUnit,
  parseIntWithUnit,
  unitName,
  unitsHint,
} from "./units.ts";

/** PostgreSQL's MAX_BACKENDS: the bound of max_connections and the pool sizes. */
export const MAX_BACKENDS = 262143;

/**
 * When a parameter may be set, PostgreSQL's GucContext, mildest last:
 * internal (never), postmaster (at start), sighup (start or reload),
 * superuser-backend/backend (at connection start), superuser, user (any time).
 */
export type GucContext =
  | "internal"
  | "postmaster"
  | "sighup"
  | "superuser-backend"
  | "backend"
  | "superuser"
  | "user";

/** Where the current value came from, lowest priority first (GucSource). */
export type GucSource = "default" | "file" | "argv" | "override" | "session";

export const GUC_SOURCE_PRIORITY: Readonly<Record<GucSource, number>> = {
  default: 0,
  file: 1,
  argv: 2,
  override: 3,
  session: 4,
};

interface ParamBase {
  readonly name: string;
  readonly context: GucContext;
  /** One line for SHOW ALL and --describe-config style listings. */
  readonly description: string;
  /** Defined by pgts rather than PostgreSQL. */
  readonly pgts?: boolean;
  /**
   * PostgreSQL's parameter, known to PGlite's Postgres too: when set
   * (postgresql.conf or `-c`), it is passed to the engine as a start
   * parameter, which then answers SHOW, current_setting, pg_settings and SET
   * for it as PostgreSQL does (`Guc.engineSettings`). Either the engine
   * applies it (tables_engine.ts), or pgts does and the engine shows pgts's
   * value and keeps it as every session's default (port, max_connections,
   * statement_timeout...). The engine reads its start parameters once: a
   * reload does not reach it.
   */
  readonly engine?: boolean;
  /**
   * PostgreSQL's context where pgts's differs: the one the engine applies
   * to a session's SET and a login's startup options. A parameter the
   * engine reads only when it starts is postmaster for postgresql.conf and
   * reload here (work_mem), while a session may still set its own (user).
   */
  readonly sessionContext?: GucContext;
  /** Read from the engine's pg_settings (pg_settings.ts) rather than written in a table by hand. */
  readonly generated?: boolean;
  /**
   * Values pgts cannot run with although PostgreSQL accepts them (a C
   * library, an engine-internal path, a setting that ends the one backend
   * every session shares): null for an acceptable value, else why.
   */
  readonly refuse?: (value: GucValue) => Refusal | null;
}

/** Why pgts refuses a value PostgreSQL would accept: the hint says it. */
export interface Refusal {
  readonly hint: string;
  /** The parameter is refused whatever its value ("parameter … is not supported"). */
  readonly whole?: boolean;
  /**
   * Refused as the server's setting only (postgresql.conf, `-c`), which
   * pgts's own work on the engine runs with too; a session may set it.
   */
  readonly serverOnly?: boolean;
}

export interface BoolParam extends ParamBase {
  readonly type: "bool";
  readonly boot: boolean;
}

export interface IntParam extends ParamBase {
  readonly type: "int";
  /** In base units. */
  readonly boot: number;
  readonly min: number;
  readonly max: number;
  readonly unit?: GucUnit;
}

export interface RealParam extends ParamBase {
  readonly type: "real";
  /** In base units. */
  readonly boot: number;
  readonly min: number;
  readonly max: number;
  readonly unit?: GucUnit;
}

export interface StringParam extends ParamBase {
  readonly type: "string";
  readonly boot: string;
  /** Returns null for an acceptable value, else the detail and hint to report. */
  readonly check?: (value: string) => CheckFailure | null;
}

export interface EnumParam extends ParamBase {
  readonly type: "enum";
  readonly boot: string;
  readonly values: readonly string[];
}

export interface CheckFailure {
  readonly detail?: string;
  readonly hint?: string;
}

export type ParamDef = BoolParam | IntParam | RealParam | StringParam | EnumParam;

export type GucValue = boolean | number | string;

const INVALID_PARAMETER_VALUE = "22023";
const FEATURE_NOT_SUPPORTED = "0A000";

/** PostgreSQL's parse_bool: case-insensitive prefixes of true/false/yes/no, on/off, 1/0. */
export function parseBool(text: string): boolean | null {
  const v = text.toLowerCase();
  if (v === "") return null;
  const prefixOf = (word: string, min = 1) => v.length >= min && word.startsWith(v);
  if (prefixOf("true") || prefixOf("yes") || prefixOf("on", 2) || v === "1") return true;
  if (prefixOf("false") || prefixOf("no") || prefixOf("off", 2) || v === "0") return false;
  return null;
}

/**
 * Splits a list value the way PostgreSQL splits listen_addresses and
 * shared_preload_libraries: comma-separated, whitespace around items ignored,
 * double quotes protect commas and spaces ("" is a literal quote).
 * Returns null for a malformed list (unterminated quote, empty item).
 */
export function splitList(text: string): string[] | null {
  const out: string[] = [];
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  skipSpace();
  if (i === text.length) return out;
  for (;;) {
    let item = "";
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= text.length) return null;
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            item += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        item += text[i++];
      }
    } else {
      while (i < text.length && text[i] !== ",") item += text[i++];
      item = item.trimEnd();
    }
    if (item === "") return null;
    out.push(item);
    skipSpace();
    if (i === text.length) return out;
    if (text[i] !== ",") return null;
    i++;
    skipSpace();
  }
}

/** Zone names already found valid: building a DateTimeFormat costs ~0.2 ms, and every child re-checks its settings. */
const validTimeZones = new Set<string>();

/** A time zone the engine and the log both know (Intl's IANA names). */
export function checkTimeZone(value: string): CheckFailure | null {
  if (validTimeZones.has(value)) return null;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: value });
  } catch {
    return {};
  }
  if (validTimeZones.size < 64) validTimeZones.add(value);
  return null;
}

function invalidValue(def: ParamDef, text: string, extra: CheckFailure) {
  return new PgError(
    INVALID_PARAMETER_VALUE,
    `invalid value for parameter "${def.name}": "${text}"`,
    extra,
  );
}

/**
 * Parses and validates `text` for `def`; throws a PgError with PostgreSQL's
 * message, or 0A000 with the reason for a value pgts refuses (`refuse`;
 * `refuse: false` for a value the server sets itself, data_directory's;
 * "session" for a session's, which may have what `serverOnly` refuses).
 */
export function parseValue(
  def: ParamDef,
  text: string,
  options: { refuse?: boolean | "session" } = {},
): GucValue {
  const value = parseChecked(def, text);
  let refusal = options.refuse === false ? null : def.refuse?.(value) ?? null;
  if (refusal?.serverOnly === true && options.refuse === "session") refusal = null;
  if (refusal !== null) {
    throw new PgError(
      FEATURE_NOT_SUPPORTED,
      refusal.whole === true
        ? `parameter "${def.name}" is not supported`
        : `unsupported value for parameter "${def.name}": "${text}"`,
      { hint: refusal.hint },
    );
  }
  return value;
}

/** A bare number, or with a unit when the parameter has one (PostgreSQL's parse_real). */
function parseReal(def: RealParam, text: string): { value: number; hint?: string } | null {
  const m = /^\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/.exec(text);
  if (m === null) return null;
  const rest = text.slice(m[0].length).trim();
  const v = Number(m[0].trim());
  if (rest === "") return { value: v };
  if (def.unit === undefined) return null;
  const converted = convertToBase(v, rest, def.unit);
  return converted === null ? { value: NaN, hint: unitsHint(def.unit) } : { value: converted };
}

function parseChecked(def: ParamDef, text: string): GucValue {
  switch (def.type) {
    case "bool": {
      const b = parseBool(text);
      if (b === null) {
        throw new PgError(
          INVALID_PARAMETER_VALUE,
          `parameter "${def.name}" requires a Boolean value`,
        );
      }
      return b;
    }
    case "int": {
      const r = parseIntWithUnit(text, def.unit);
      if (!r.ok) throw invalidValue(def, text, r.hint === undefined ? {} : { hint: r.hint });
      if (r.value < def.min || r.value > def.max) {
        const u = def.unit === undefined ? "" : ` ${unitName(def.unit)}`;
        throw new PgError(
          INVALID_PARAMETER_VALUE,
          // PostgreSQL 15's wording: the unit follows the value, not the bounds.
          `${r.value}${u} is outside the valid range for parameter "${def.name}" ` +
            `(${def.min} .. ${def.max})`,
        );
      }
      return r.value;
    }
    case "real": {
      const r = parseReal(def, text);
      const v = r?.value ?? NaN;
      if (!Number.isFinite(v)) throw invalidValue(def, text, r?.hint ? { hint: r.hint } : {});
      if (v < def.min || v > def.max) {
        const u = def.unit === undefined ? "" : ` ${unitName(def.unit)}`;
        throw new PgError(
          INVALID_PARAMETER_VALUE,
          `${formatReal(v)}${u} is outside the valid range for parameter "${def.name}" ` +
            `(${formatReal(def.min)} .. ${formatReal(def.max)})`,
        );
      }
      return v;
    }
    case "string": {
      const failure = def.check?.(text) ?? null;
      if (failure !== null) throw invalidValue(def, text, failure);
      return text;
    }
    case "enum": {
      let found = def.values.find((v) => v.toLowerCase() === text.toLowerCase());
      // An enum of on/off and more takes every spelling of a Boolean for
      // them, as PostgreSQL's hidden values do (huge_pages = true).
      if (found === undefined && def.values.includes("on") && def.values.includes("off")) {
        const b = parseBool(text);
        if (b !== null) found = b ? "on" : "off";
      }
      if (found === undefined) {
        throw invalidValue(def, text, { hint: `Available values: ${def.values.join(", ")}.` });
      }
      return found;
    }
    default: {
      const never: never = def;
      throw new TypeError(`Unknown parameter type ${String((never as ParamDef).type)}`);
    }
  }
}

/** C's `%g`, the form in which PostgreSQL shows a real parameter: six significant digits. */
export function formatReal(value: number): string {
  if (value === 0) return "0";
  const exp = Math.floor(Math.log10(Math.abs(Number(value.toPrecision(6)))));
  if (exp < -4 || exp >= 6) {
    const [mantissa = "", power = "0"] = value.toExponential(5).split("e");
    const digits = mantissa.includes(".") ? mantissa.replace(/\.?0+$/, "") : mantissa;
    const n = Number(power);
    return `${digits}e${n < 0 ? "-" : "+"}${String(Math.abs(n)).padStart(2, "0")}`;
  }
  return String(Number(value.toPrecision(6)));
}

/** The SHOW form of a value: on/off, integers with their largest even unit, strings as is. */
export function formatValue(def: ParamDef, value: GucValue): string {
  switch (def.type) {
    case "bool":
      return value ? "on" : "off";
    case "int":
      return formatWithUnit(value as number, def.unit);
    case "real":
      return formatReal(value as number) +
        (def.unit !== undefined && (value as number) > 0 ? def.unit : "");
    case "string":
    case "enum":
      return String(value);
    default: {
      const never: never = def;
      throw new TypeError(`Unknown parameter type ${String((never as ParamDef).type)}`);
    }
  }
}
