/**
 * How the postmaster reads its settings. It never caches them: every read
 * goes through `SettingsSource.get(name)`, so a reload (which the GUC module
 * performs in the caller's `reloadConfig` hook) takes effect at the next
 * decision. Settings of PostgreSQL's POSTMASTER context (max_connections,
 * max_worker_processes) are read once, at start, because the slot pools are
 * sized from them; the GUC module refuses to change them on reload anyway.
 *
 * Values may come as numbers, booleans or PostgreSQL-style strings ("on",
 * "60s", "500ms"); a missing value falls back to PostgreSQL's default.
 */

/** Anything with `get(name)` semantics: a GUC module, a Map, a plain object wrapper. */
export interface SettingsSource {
  get(name: string): unknown;
}

/** The settings the postmaster consults, with PostgreSQL's defaults (pgts's own marked). */
export const POSTMASTER_SETTING_DEFAULTS = {
  max_connections: 100,
  superuser_reserved_connections: 3,
  reserved_connections: 0,
  max_worker_processes: 8,
  restart_after_crash: true,
  /** Seconds. */
  authentication_timeout: 60,
  /** pgts: how many restarts of one background worker `bgworker_restart_period` allows. */
  bgworker_restart_intensity: 5,
  /** pgts: seconds; the window of the restart intensity (Erlang/OTP's MaxT). */
  bgworker_restart_period: 60,
  /** pgts: seconds before SIGKILL follows SIGQUIT (PostgreSQL's SIGKILL_CHILDREN_AFTER_SECS). */
  sigkill_children_after: 5,
  /** pgts: whether the autovacuum launcher kind is started (when its entry is given). */
  autovacuum: true,
  /** off, on or always: the archiver runs unless off (when its entry is given). */
  archive_mode: "off",
} as const;

export type PostmasterSettingName = keyof typeof POSTMASTER_SETTING_DEFAULTS;

function invalid(name: string, value: unknown, what: string): never {
  throw new RangeError(`Setting "${name}" must be ${what}, got ${JSON.stringify(value)}`);
}

const UNIT_SECONDS: Record<string, number> = {
  us: 1e-6,
  ms: 1e-3,
  s: 1,
  min: 60,
  h: 3600,
  d: 86400,
};

/** Reads typed settings from a source. */
export class PostmasterSettings {
  #source: SettingsSource;

  constructor(source: SettingsSource) {
    this.#source = source;
  }

  #raw(name: PostmasterSettingName): unknown {
    const v = this.#source.get(name);
    return v === undefined || v === null ? POSTMASTER_SETTING_DEFAULTS[name] : v;
  }

  int(name: PostmasterSettingName): number {
    const v = this.#raw(name);
    const n = typeof v === "string" ? Number(v.trim()) : v;
    if (typeof n !== "number" || !Number.isInteger(n)) invalid(name, v, "an integer");
    return n;
  }

  bool(name: PostmasterSettingName): boolean {
    const v = this.#raw(name);
    if (typeof v === "boolean") return v;
    if (typeof v === "string") {
      const s = v.trim().toLowerCase();
      if (["on", "true", "yes", "1", "t", "y"].includes(s)) return true;
      if (["off", "false", "no", "0", "f", "n"].includes(s)) return false;
    }
    if (v === 1) return true;
    if (v === 0) return false;
    return invalid(name, v, "a boolean");
  }

  /** A string setting (an enum's value). */
  string(name: PostmasterSettingName): string {
    return String(this.#raw(name)).trim().toLowerCase();
  }

  /** A duration in seconds; a bare number is seconds (fractions allowed, for tests). */
  seconds(name: PostmasterSettingName): number {
    const v = this.#raw(name);
    if (typeof v === "number" && Number.isFinite(v) && v >= 0) return v;
    if (typeof v === "string") {
      const m = /^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$/.exec(v);
      if (m !== null) return Number(m[1]) * (UNIT_SECONDS[m[2] ?? "s"] ?? 1);
    }
    return invalid(name, v, "a duration");
  }
}

/** A `SettingsSource` over a plain object or Map, for tests and embedding. */
export function settingsFrom(
  values: Readonly<Record<string, unknown>> | ReadonlyMap<string, unknown>,
): SettingsSource {
  if (values instanceof Map) return { get: (name) => values.get(name) };
  const obj = values as Readonly<Record<string, unknown>>;
  return { get: (name) => (Object.hasOwn(obj, name) ? obj[name] : undefined) };
}
