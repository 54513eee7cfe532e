/**
 * Output functions for the pg_stat_activity columns offengine.ts answers
 * that are neither text nor integers: timestamptz in text (as the engine
 * writes it for the session's DateStyle and TimeZone) and binary, and inet
 * in text and binary. Each gives null where it cannot be sure to write
 * exactly what the engine would, and the statement then waits for the
 * engine: a DateStyle other than ISO (the others print the zone's
 * abbreviation, which only the engine's time zone files know), a TimeZone
 * that is not a plain IANA name (POSIX-style `<+05>-05`, `EST5EDT`, an
 * offset) or that the host's Intl does not know, an address that is not a
 * plain IPv4 or IPv6 one. Pure functions; no session, no engine.
 *
 * The offsets come from the host's time zone data (Intl), the engine's from
 * PGlite's own files. They agree for the present in every zone whose rules
 * did not change between the two releases of the tz database; a zone that
 * did (a country that dropped daylight saving time last year) could show
 * another offset here than on the engine.
 */

/** Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC). */
const POSTGRES_EPOCH_US = 946_684_800_000_000n;

/** The DateStyle values whose timestamptz output this file writes: ISO with any field order. */
const ISO_DATE_STYLE = /^ISO, (?:MDY|DMY|YMD)$/;

/**
 * A TimeZone value that names a zone of the tz database and nothing else:
 * letters, `_`, `-` and `/`. No digits: `EST5EDT` and `GMT+5` read as POSIX
 * rules where the engine has no such file, and `Etc/GMT+5` is left to the
 * engine too.
 */
const ZONE_NAME = /^[A-Za-z][A-Za-z_-]*(?:\/[A-Za-z][A-Za-z_-]*)*$/;

/** Formatters by zone name (null: the name is not one written here); bounded. */
const zoneFormats = new Map<string, Intl.DateTimeFormat | null>();
const ZONE_FORMATS_MAX = 256;

function zoneFormat(timeZone: string): Intl.DateTimeFormat | null {
  let f = zoneFormats.get(timeZone);
  if (f !== undefined) return f;
  f = null;
  if (ZONE_NAME.test(timeZone)) {
    try {
      f = new Intl.DateTimeFormat("en-US", {
        timeZone,
        hourCycle: "h23",
        era: "short",
        year: "numeric",
        month: "numeric",
        day: "numeric",
        hour: "numeric",
        minute: "numeric",
        second: "numeric",
      });
    } catch {
      f = null; // a name the host does not know
    }
  }
  if (zoneFormats.size >= ZONE_FORMATS_MAX) zoneFormats.clear();
  zoneFormats.set(timeZone, f);
  return f;
}

/** A session's DateStyle and TimeZone, as its client was last told them (ParameterStatus). */
export interface TimestampStyle {
  readonly dateStyle: string | undefined;
  readonly timeZone: string | undefined;
}

/** Writes timestamptz values (microseconds since the Unix epoch) in text for one style. */
export type TimestamptzOut = (us: number) => string | null;

/**
 * timestamptz's text output for `style`, or null when this file cannot
 * write it exactly (see the header). The function itself gives null for a
 * value outside years 1–9999 (never one of pg_stat_activity's).
 */
export function timestamptzOut(style: TimestampStyle): TimestamptzOut | null {
  const { dateStyle, timeZone } = style;
  if (dateStyle === undefined || timeZone === undefined || !ISO_DATE_STYLE.test(dateStyle)) {
    return null;
  }
  const format = zoneFormat(timeZone);
  if (format === null) return null;
  return (us) => {
    if (!Number.isSafeInteger(us)) return null;
    const secondsMs = Math.floor(us / 1_000_000) * 1000;
    const fraction = us - secondsMs * 1000;
    const part: Record<string, string> = {};
    for (const p of format.formatToParts(secondsMs)) part[p.type] = p.value;
    if (part.era !== "AD") return null;
    const [y, mo, d, h, mi, s] = ["year", "month", "day", "hour", "minute", "second"].map((k) =>
      Number(part[k])
    ) as [number, number, number, number, number, number];
    if (!(y >= 1 && y <= 9999)) return null;
    const local = new Date(0);
    local.setUTCFullYear(y, mo - 1, d);
    local.setUTCHours(h, mi, s, 0);
    // Seconds east of Greenwich at that instant (LMT offsets have seconds).
    const east = (local.getTime() - secondsMs) / 1000;
    if (!Number.isInteger(east)) return null;
    const two = (n: number) => String(n).padStart(2, "0");
    let out = `${String(y).padStart(4, "0")}-${two(mo)}-${two(d)} ${two(h)}:${two(mi)}:${two(s)}`;
    // Up to microseconds, trailing zeros dropped; none for a whole second.
    if (fraction !== 0) out += `.${String(fraction).padStart(6, "0").replace(/0+$/, "")}`;
    const abs = Math.abs(east);
    out += `${east < 0 ? "-" : "+"}${two(Math.floor(abs / 3600))}`;
    const zm = Math.floor(abs / 60) % 60;
    const zs = abs % 60;
    if (zm !== 0 || zs !== 0) out += `:${two(zm)}`;
    if (zs !== 0) out += `:${two(zs)}`;
    return out;
  };
}

/** timestamptz's binary form: microseconds since 2000-01-01 UTC, a big-endian int8. */
export function timestamptzSend(us: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigInt64(0, BigInt(us) - POSTGRES_EPOCH_US);
  return b;
}

/** An address as inet's input reads it: its family's bytes; null when not a plain address. */
function inetBytes(text: string): Uint8Array | null {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4 !== null) {
    const octets = v4.slice(1).map((o) => (o.length > 1 && o[0] === "0" ? 256 : Number(o)));
    return octets.every((o) => o <= 255) ? Uint8Array.from(octets) : null;
  }
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || !text.includes(":")) return null;
  // An IPv4 tail (`::ffff:127.0.0.1`) is its last two groups.
  let groups = text;
  let tail: Uint8Array | null = null;
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    tail = inetBytes(text.slice(lastColon + 1));
    if (tail === null || tail.length !== 4) return null;
    groups = text.slice(0, lastColon + 1) + "0:0";
  }
  const halves = groups.split("::");
  if (halves.length > 2) return null;
  const words = (s: string): number[] | null => {
    if (s === "") return [];
    const out: number[] = [];
    for (const w of s.split(":")) {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(w)) return null;
      out.push(parseInt(w, 16));
    }
    return out;
  };
  const head = words(halves[0]!);
  const rest = halves.length === 2 ? words(halves[1]!) : [];
  if (head === null || rest === null) return null;
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...new Array<number>(missing).fill(0), ...rest];
  const bytes = new Uint8Array(16);
  all.forEach((w, i) => {
    bytes[2 * i] = w >> 8;
    bytes[2 * i + 1] = w & 0xff;
  });
  if (tail !== null) bytes.set(tail, 12);
  return bytes;
}

/**
 * inet's text output for a host address (a /32 or /128, written without
 * its mask), or null when `text` is not one this file reads. IPv6 as
 * PostgreSQL writes it: lowercase groups without leading zeros, the first
 * longest run of two or more zero groups as `::`, and the last 32 bits as
 * dotted decimal in the IPv4-compatible and IPv4-mapped forms.
 */
export function inetOut(text: string): string | null {
  const b = inetBytes(text);
  if (b === null) return null;
  if (b.length === 4) return b.join(".");
  const w = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
  let best = { at: -1, len: 0 };
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > best.len) best = { at: i, len: j - i };
    i = j;
  }
  if (best.len < 2) best = { at: -1, len: 0 };
  const ipv4Tail = best.at === 0 &&
    (best.len === 6 || (best.len === 7 && w[7] !== 1) || (best.len === 5 && w[5] === 0xffff));
  let out = "";
  for (let i = 0; i < 8; i++) {
    if (best.at !== -1 && i >= best.at && i < best.at + best.len) {
      if (i === best.at) out += ":";
      continue;
    }
    if (i !== 0) out += ":";
    if (i === 6 && ipv4Tail) {
      out += `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
      return out;
    }
    out += w[i]!.toString(16);
  }
  if (best.at !== -1 && best.at + best.len === 8) out += ":";
  return out;
}

/**
 * inet's binary form of a host address: family (PGSQL_AF_INET 2,
 * PGSQL_AF_INET6 3), bits, is_cidr 0, the address's length, its bytes;
 * null when `text` is not one this file reads.
 */
export function inetSend(text: string): Uint8Array | null {
  const b = inetBytes(text);
  if (b === null) return null;
  const v4 = b.length === 4;
  return Uint8Array.of(v4 ? 2 : 3, v4 ? 32 : 128, 0, b.length, ...b);
}
