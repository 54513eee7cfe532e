/**
 * Grand Unified Configuration for pgts, the counterpart of guc.c and
 * ProcessConfigFile: one `Guc` object holds every parameter's current value
 * and where it came from (default, configuration file, command line, the
 * server itself, a session), loads postgresql.conf at start, applies `-c`
 * overrides, and reloads on SIGHUP with PostgreSQL's rules: sighup-and-lower
 * parameters change, a changed postmaster parameter is refused with
 * "cannot be changed without restarting the server", a file with any error
 * changes nothing.
 *
 * Values are read with typed getters (base units, or ms/bytes) or in SHOW
 * form with `get`/`show`. A child gets the settings as `snapshot()` (plain
 * strings, structured-cloneable) and rebuilds them with `Guc.fromSnapshot`.
 * Files are read through the injected ConfigReader; nothing here touches a
 * runtime API.
 */

import { ereport, ERRCODE, PgError } from "../elog.ts";
import { type ConfigItem, type ConfigReader, parseConfigFile } from "./parser.ts";
import { PARAMETERS } from "./tables.ts";
import { toBytes, toMilliseconds } from "./units.ts";
import {
  formatValue,
  GUC_SOURCE_PRIORITY,
  type GucSource,
  type GucValue,
  type ParamDef,
  parseValue,
} from "./values.ts";

const CANT_CHANGE_RUNTIME_PARAM = "55P02";
const INSUFFICIENT_PRIVILEGE = "42501";

/** Settings as plain strings (SHOW form) of parameters not at their default. */
export type GucSnapshot = Readonly<Record<string, string>>;

export interface GucOptions {
  /** Reads postgresql.conf and its includes; required for `load` and `reload`. */
  reader?: ConfigReader;
  /** Absolute path of postgresql.conf. */
  configFile?: string;
  /** The parameter table; PostgreSQL's and pgts's parameters by default. */
  parameters?: readonly ParamDef[];
}

export interface SetOptions {
  /**
   * Who sets the value: "argv" for `-c` at start, "session" for SET from a
   * client (context rules apply), "override" for the server itself (no checks).
   */
  source: "argv" | "session" | "override";
  /** For session sets: whether the session's user is a superuser. */
  superuser?: boolean;
}

/** One parameter whose value a reload changed. */
export interface GucChange {
  readonly name: string;
  readonly previous: string;
  readonly value: string;
}

export interface ReloadResult {
  /** False when the file had errors and nothing was changed. */
  readonly applied: boolean;
  readonly changed: readonly GucChange[];
  /** Postmaster parameters whose new file value waits for a restart. */
  readonly pendingRestart: readonly string[];
  readonly errors: readonly PgError[];
}

/** What is known about one parameter, for SHOW ALL and pg_settings-like listings. */
export interface GucDescription {
  readonly def: ParamDef;
  readonly setting: string;
  readonly source: GucSource;
  readonly sourceFile?: string;
  readonly sourceLine?: number;
  readonly pendingRestart: boolean;
}

interface Slot {
  readonly def: ParamDef;
  value: GucValue;
  source: GucSource;
  file?: string;
  line?: number;
}

function placeholder(name: string): ParamDef {
  return {
    name,
    type: "string",
    context: "user",
    boot: "",
    description: "Placeholder for a parameter of an extension or background worker.",
  };
}

/** A value as text that reads back the same: SHOW's form, but a real in full (%g keeps six digits). */
function exactText(slot: Slot): string {
  return slot.def.type === "real" ? String(slot.value) : formatValue(slot.def, slot.value);
}

function lineContext(item: ConfigItem): string {
  return `line ${item.line} of configuration file "${item.file}"`;
}

function withContext(e: unknown, item: ConfigItem): PgError {
  if (!(e instanceof PgError)) throw e;
  return new PgError(e.code, e.message, { ...e.fields, context: lineContext(item) });
}

/**
 * The configuration file could not be loaded at start. `errors` holds each
 * problem (unknown parameter, bad value, syntax) with its file and line.
 */
export class ConfigFileError extends PgError {
  readonly errors: readonly PgError[];

  constructor(file: string, errors: readonly PgError[]) {
    super(ERRCODE.CONFIG_FILE_ERROR, `configuration file "${file}" contains errors`, {
      severity: "FATAL",
    });
    this.errors = errors;
  }
}

/** The file ALTER SYSTEM writes (PostgreSQL's PG_AUTOCONF_FILENAME). */
export const AUTO_CONFIG_FILENAME = "postgresql.auto.conf";

/** Its first lines, as `pgts init` and every ALTER SYSTEM write them. */
export const AUTO_CONFIG_HEADER =
  "# Written by ALTER SYSTEM: read after postgresql.conf, its values win.\n" +
  "# ALTER SYSTEM rewrites the whole file; change it with ALTER SYSTEM, not by hand.\n";

/**
 * postgresql.auto.conf beside postgresql.conf (both in the data directory),
 * read after it as if included at its end: what ALTER SYSTEM wrote wins.
 */
export function autoConfigFile(configFile: string): string {
  return `${configFile.slice(0, configFile.lastIndexOf("/") + 1)}${AUTO_CONFIG_FILENAME}`;
}

export class Guc {
  #slots = new Map<string, Slot>();
  #reader: ConfigReader | undefined;
  #configFile: string | undefined;
  #pendingRestart = new Set<string>();
  #generation = 0;

  constructor(options: GucOptions = {}) {
    this.#reader = options.reader;
    this.#configFile = options.configFile;
    for (const def of options.parameters ?? PARAMETERS) {
      this.#slots.set(def.name.toLowerCase(), { def, value: def.boot, source: "default" });
    }
  }

  /** Rebuilds the settings a parent sent with `snapshot()`. */
  static fromSnapshot(snapshot: GucSnapshot, options: GucOptions = {}): Guc {
    const guc = new Guc(options);
    for (const [name, value] of Object.entries(snapshot)) {
      guc.set(name, value, { source: "override" });
    }
    return guc;
  }

  get configFile(): string | undefined {
    return this.#configFile;
  }

  /**
   * Reads the configuration file at server start (ProcessConfigFile with
   * PGC_POSTMASTER). On any error nothing is applied: each error is logged
   * at LOG, as PostgreSQL does, and a ConfigFileError (FATAL
   * `configuration file "%s" contains errors`) carrying them is thrown.
   */
  load(): void {
    const { items, errors } = this.#readFile();
    const plan = this.#plan(items, "postmaster", errors);
    if (errors.length > 0) {
      this.#logErrors(errors);
      throw new ConfigFileError(this.#configFile ?? "", errors);
    }
    for (const { slot, value, item } of plan) this.#assign(slot, value, "file", item);
  }

  /**
   * Re-reads the configuration file (SIGHUP). Logs and returns what changed;
   * postmaster parameters changed in the file are logged and left alone.
   */
  reload(): ReloadResult {
    const { items, errors } = this.#readFile();
    const pendingRestart = new Set<string>();
    const inFile = new Set<Slot>();
    const plan = this.#plan(items, "sighup", errors, { pendingRestart, inFile });
    const file = this.#configFile ?? "";
    if (errors.length > 0) {
      this.#logErrors(errors);
      ereport("LOG", `configuration file "${file}" contains errors; no changes were applied`, {
        code: ERRCODE.CONFIG_FILE_ERROR,
        category: "guc",
      });
      return { applied: false, changed: [], pendingRestart: [...this.#pendingRestart], errors };
    }
    const changed: GucChange[] = [];
    for (const slot of this.#slots.values()) {
      if (slot.source !== "file" || inFile.has(slot)) continue;
      // Removed from the file: back to the built-in default.
      if (slot.def.context === "postmaster") {
        if (slot.value !== slot.def.boot) {
          pendingRestart.add(slot.def.name);
          this.#logRestartNeeded(slot.def.name);
        }
        continue;
      }
      const previous = formatValue(slot.def, slot.value);
      this.#assign(slot, slot.def.boot, "default", undefined);
      ereport(
        "LOG",
        `parameter "${slot.def.name}" removed from configuration file, reset to default`,
        { category: "guc" },
      );
      const value = formatValue(slot.def, slot.value);
      if (value !== previous) changed.push({ name: slot.def.name, previous, value });
    }
    for (const { slot, value, item } of plan) {
      const previous = formatValue(slot.def, slot.value);
      this.#assign(slot, value, "file", item);
      const now = formatValue(slot.def, slot.value);
      if (now !== previous) {
        changed.push({ name: slot.def.name, previous, value: now });
        ereport("LOG", `parameter "${item.name}" changed to "${item.value}"`, { category: "guc" });
      }
    }
    this.#pendingRestart = pendingRestart;
    return { applied: true, changed, pendingRestart: [...pendingRestart], errors: [] };
  }

  #logErrors(errors: readonly PgError[]): void {
    for (const e of errors) {
      ereport("LOG", e.message, { ...e.fields, code: e.code, category: "guc" });
    }
  }

  #readFile() {
    if (this.#reader === undefined || this.#configFile === undefined) {
      throw new TypeError("Guc was created without a reader and configFile");
    }
    return parseConfigFile(this.#configFile, this.#reader, [autoConfigFile(this.#configFile)]);
  }

  #logRestartNeeded(name: string): void {
    ereport("LOG", `parameter "${name}" cannot be changed without restarting the server`, {
      code: CANT_CHANGE_RUNTIME_PARAM,
      category: "guc",
    });
  }

  /** Validates every file item; returns what to assign and appends errors. */
  #plan(
    items: readonly ConfigItem[],
    phase: "postmaster" | "sighup",
    errors: PgError[],
    seen: { pendingRestart?: Set<string>; inFile?: Set<Slot> } = {},
  ): { slot: Slot; value: GucValue; item: ConfigItem }[] {
    // A later line for the same name wins, as in PostgreSQL.
    const last = new Map<string, ConfigItem>();
    for (const item of items) {
      const key = this.#key(item.name);
      last.delete(key);
      last.set(key, item);
    }
    const plan: { slot: Slot; value: GucValue; item: ConfigItem }[] = [];
    for (const [key, item] of last) {
      let slot = this.#slots.get(key);
      if (slot === undefined && key.includes(".")) {
        slot = { def: placeholder(key), value: "", source: "default" };
        this.#slots.set(key, slot);
      }
      if (slot === undefined) {
        errors.push(
          new PgError(
            ERRCODE.UNDEFINED_OBJECT,
            `unrecognized configuration parameter "${item.name}" in file "${item.file}" line ${item.line}`,
          ),
        );
        continue;
      }
      seen.inFile?.add(slot);
      let value: GucValue;
      try {
        if (slot.def.context === "internal") {
          throw new PgError(
            CANT_CHANGE_RUNTIME_PARAM,
            `parameter "${slot.def.name}" cannot be changed`,
          );
        }
        value = parseValue(slot.def, item.value);
      } catch (e) {
        errors.push(withContext(e, item));
        continue;
      }
      // A value from the command line outranks the file.
      if (GUC_SOURCE_PRIORITY[slot.source] > GUC_SOURCE_PRIORITY.file) continue;
      if (phase === "sighup" && slot.def.context === "postmaster") {
        if (value !== slot.value) {
          seen.pendingRestart?.add(slot.def.name);
          this.#logRestartNeeded(slot.def.name);
        }
        continue;
      }
      plan.push({ slot, value, item });
    }
    return plan;
  }

  #assign(slot: Slot, value: GucValue, source: GucSource, item: ConfigItem | undefined): void {
    this.#generation++;
    slot.value = value;
    slot.source = source;
    if (item === undefined) {
      delete slot.file;
      delete slot.line;
    } else {
      slot.file = item.file;
      slot.line = item.line;
    }
  }

  /**
   * The table's key for `name`: lower case, and a pgts parameter named
   * with the `pgts.` prefix that sessions use (`pgts.engine_hold_timeout`,
   * as the server's hints spell it) as the parameter itself, not an
   * extension's placeholder that nothing reads.
   */
  #key(name: string): string {
    const key = name.toLowerCase();
    if (!key.startsWith("pgts.")) return key;
    const own = this.#slots.get(key.slice(5));
    return own?.def.pgts === true ? key.slice(5) : key;
  }

  #slot(name: string): Slot {
    const slot = this.#slots.get(this.#key(name));
    if (slot === undefined) {
      throw new PgError(ERRCODE.UNDEFINED_OBJECT, `unrecognized configuration parameter "${name}"`);
    }
    return slot;
  }

  /**
   * Sets a parameter from the command line (`-c`), a session, or the server
   * itself. Throws a PgError with PostgreSQL's message when the value is
   * invalid or the parameter cannot be set from that source.
   */
  set(name: string, value: string, options: SetOptions): void {
    let slot = this.#slots.get(this.#key(name));
    if (slot === undefined && name.includes(".")) {
      slot = { def: placeholder(name.toLowerCase()), value: "", source: "default" };
      this.#slots.set(name.toLowerCase(), slot);
    }
    slot ??= this.#slot(name);
    const def = slot.def;
    const refuse = (code: string, message: string) => new PgError(code, message);
    if (options.source === "argv" && def.context === "internal") {
      throw refuse(CANT_CHANGE_RUNTIME_PARAM, `parameter "${def.name}" cannot be changed`);
    }
    if (options.source === "session") {
      switch (def.context) {
        case "internal":
          throw refuse(CANT_CHANGE_RUNTIME_PARAM, `parameter "${def.name}" cannot be changed`);
        case "postmaster":
          throw refuse(
            CANT_CHANGE_RUNTIME_PARAM,
            `parameter "${def.name}" cannot be changed without restarting the server`,
          );
        case "sighup":
          throw refuse(CANT_CHANGE_RUNTIME_PARAM, `parameter "${def.name}" cannot be changed now`);
        case "superuser-backend":
        case "backend":
          throw refuse(
            CANT_CHANGE_RUNTIME_PARAM,
            `parameter "${def.name}" cannot be set after connection start`,
          );
        case "superuser":
          if (options.superuser !== true) {
            throw refuse(
              INSUFFICIENT_PRIVILEGE,
              `permission denied to set parameter "${def.name}"`,
            );
          }
          break;
        case "user":
          break;
        default: {
          const never: never = def.context;
          throw new TypeError(`Unknown context ${String(never)}`);
        }
      }
    }
    const parsed = parseValue(def, value, { refuse: options.source !== "override" });
    this.#assign(slot, parsed, options.source, undefined);
  }

  has(name: string): boolean {
    return this.#slots.has(name.toLowerCase());
  }

  /** The parameter's value in SHOW form ("1min", "on", "10MB"); PostgreSQL's GetConfigOption. */
  get(name: string): string {
    const slot = this.#slot(name);
    return formatValue(slot.def, slot.value);
  }

  /** Same as `get`: the value as SHOW prints it, with its unit. */
  show(name: string): string {
    return this.get(name);
  }

  #typed<T extends ParamDef["type"]>(name: string, ...types: T[]): Slot {
    const slot = this.#slot(name);
    if (!(types as string[]).includes(slot.def.type)) {
      throw new TypeError(`Parameter "${slot.def.name}" is of type ${slot.def.type}`);
    }
    return slot;
  }

  /** Counts the values assigned so far: what was read of them is current while it stays. */
  get generation(): number {
    return this.#generation;
  }

  getBool(name: string): boolean {
    return this.#typed(name, "bool").value as boolean;
  }

  /** An integer parameter in its base unit (kB, s, min... as the table says). */
  getInt(name: string): number {
    return this.#typed(name, "int").value as number;
  }

  /** A real (floating-point) parameter. */
  getReal(name: string): number {
    return this.#typed(name, "real").value as number;
  }

  /** A string or enum parameter. */
  getString(name: string): string {
    return this.#typed(name, "string", "enum").value as string;
  }

  /** A time parameter in milliseconds; negative values (-1 "disabled") are returned as is. */
  getMs(name: string): number {
    const slot = this.#typed(name, "int");
    const def = slot.def as Extract<ParamDef, { type: "int" }>;
    if (def.unit === undefined) throw new TypeError(`Parameter "${def.name}" has no unit`);
    const v = slot.value as number;
    return v < 0 ? v : toMilliseconds(v, def.unit);
  }

  /** A memory parameter in bytes; negative values are returned as is. */
  getBytes(name: string): number {
    const slot = this.#typed(name, "int");
    const def = slot.def as Extract<ParamDef, { type: "int" }>;
    if (def.unit === undefined) throw new TypeError(`Parameter "${def.name}" has no unit`);
    const v = slot.value as number;
    return v < 0 ? v : toBytes(v, def.unit);
  }

  /** Postmaster parameters changed in the file since start, waiting for a restart. */
  get pendingRestart(): readonly string[] {
    return [...this.#pendingRestart];
  }

  describe(name: string): GucDescription {
    const slot = this.#slot(name);
    return {
      def: slot.def,
      setting: formatValue(slot.def, slot.value),
      source: slot.source,
      ...(slot.file === undefined ? {} : { sourceFile: slot.file }),
      ...(slot.line === undefined ? {} : { sourceLine: slot.line }),
      pendingRestart: this.#pendingRestart.has(slot.def.name),
    };
  }

  /** Every parameter name, in table order. */
  names(): string[] {
    return [...this.#slots.values()].map((s) => s.def.name);
  }

  /**
   * The parameters the PGlite engine applies itself (`engine` in the table)
   * that are set, in SHOW form: its start parameters (`-c name=value`). One
   * left at its default is not passed, so the engine keeps its own.
   */
  engineSettings(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const slot of this.#slots.values()) {
      if (slot.def.engine === true && slot.source !== "default") {
        // port 0 (the kernel picks one) is not a port the engine accepts;
        // the server sets the port it picked (an override) before the engine opens.
        if (slot.def.name === "port" && slot.value === 0) continue;
        out[slot.def.name] = exactText(slot);
      }
    }
    return out;
  }

  /**
   * The file and line of each of `names` that postgresql.conf or
   * postgresql.auto.conf set (not the command line), for the engine's
   * pg_settings (sourcefile, sourceline).
   */
  settingFiles(names: Iterable<string>): Record<string, readonly [file: string, line: number]> {
    const out: Record<string, readonly [string, number]> = {};
    for (const name of names) {
      const slot = this.#slots.get(name.toLowerCase());
      if (slot?.source !== "file" || slot.file === undefined) continue;
      out[name] = [slot.file, slot.line ?? 0];
    }
    return out;
  }

  /** Non-default settings as plain strings, for a child's start parameters. */
  snapshot(): GucSnapshot {
    const out: Record<string, string> = {};
    for (const slot of this.#slots.values()) {
      if (slot.source !== "default") out[slot.def.name] = exactText(slot);
    }
    return out;
  }
}
