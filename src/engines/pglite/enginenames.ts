/**
 * The names a session's prepared statements and WITH HOLD cursors have on
 * the engine, where every session's live in the one backend: the
 * session's prefix, then the name the client gave (naming.ts puts them in
 * the statements it reads; portalnames.ts refuses another session's).
 *
 * The prefix is `pgts<id>.<random>:`. The random part keeps one session
 * from naming another's cursor in what pgts cannot see: PL/pgSQL's own
 * FETCH on a refcursor finds the portal by the name in the variable, and
 * `pgts3:c` was easy to guess. Only superusers can list the names
 * (pg_cursor(), activity.ts).
 */

/** Random words for the prefixes, drawn from the CSPRNG a batch at a time (one call per 128 sessions). */
const randomWords = new Uint32Array(256);
let randomUsed = randomWords.length;

/** A session's prefix on the engine. */
export function sessionPrefix(id: number): string {
  if (randomUsed + 2 > randomWords.length) {
    crypto.getRandomValues(randomWords);
    randomUsed = 0;
  }
  const a = randomWords[randomUsed++]!;
  const b = randomWords[randomUsed++]!;
  // Eight base-36 digits: about 41 bits, in 8 of the name's 63 bytes.
  const part = (n: number) => (n % 36 ** 4).toString(36).padStart(4, "0");
  return `pgts${id}.${part(a)}${part(b)}:`;
}

/** An engine name of some session's, as a regular expression's source (for SQL too). */
export const ENGINE_NAME_PATTERN = "^pgts[0-9]+\\.[0-9a-z]+:";
const ENGINE_NAME = new RegExp(ENGINE_NAME_PATTERN);

/** Whether `name` is some session's engine name. */
export function isEngineName(name: string): boolean {
  return ENGINE_NAME.test(name);
}

/** NAMEDATALEN - 1: the bytes of a statement's or cursor's name the engine keeps. */
const NAME_BYTES = 63;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/**
 * The engine's name of a session's statement or cursor `name`: the
 * session's prefix, then the name. The engine keeps 63 bytes of a name, as
 * PostgreSQL does, so a name that would not fit with the prefix keeps its
 * first bytes and ends with `~` and a hash of the 63 bytes PostgreSQL would
 * keep of it: two names are one on the engine exactly when PostgreSQL
 * would take them for one.
 */
export function engineName(prefix: string, name: string): string {
  const full = prefix + name;
  // UTF-16 units times 3 bound the UTF-8 bytes.
  if (full.length * 3 <= NAME_BYTES) return full;
  const prefixBytes = utf8.encode(prefix).length;
  const bytes = utf8.encode(name);
  if (prefixBytes + bytes.length <= NAME_BYTES) return full;
  const kept = clipUtf8(bytes, NAME_BYTES);
  let h = 0x811c9dc5;
  for (const b of kept) h = Math.imul(h ^ b, 0x01000193);
  const tag = "~" + (h >>> 0).toString(16).padStart(8, "0");
  const onEngine = prefix +
    fromUtf8.decode(clipUtf8(kept, NAME_BYTES - prefixBytes - tag.length)) + tag;
  // Kept as the most recently used: a name in use is never the one dropped.
  hashedNames.delete(onEngine);
  if (hashedNames.size >= HASHED_NAMES_KEPT) hashedNames.delete(hashedNames.keys().next().value!);
  hashedNames.set(onEngine, fromUtf8.decode(kept));
  return onEngine;
}

/**
 * The name PostgreSQL keeps of an identifier: its first 63 bytes, cut at a
 * character's start (truncate_identifier). PostgreSQL's scanner truncates
 * every identifier so, and two names that keep the same bytes are one.
 */
export function keptName(name: string): string {
  if (name.length * 3 <= NAME_BYTES) return name;
  const bytes = utf8.encode(name);
  return bytes.length <= NAME_BYTES ? name : fromUtf8.decode(clipUtf8(bytes, NAME_BYTES));
}

/**
 * Engine names that end in a hash (engineName), with the name PostgreSQL
 * would have kept, for the messages that name them (publicText): the most
 * recent HASHED_NAMES_KEPT. The key carries its session's random prefix,
 * so no session can read another's.
 */
const hashedNames = new Map<string, string>();
const HASHED_NAMES_KEPT = 1024;

/** The first bytes of UTF-8 `bytes`, at most `n`, cut at a character's start (pg_mbcliplen). */
function clipUtf8(bytes: Uint8Array, n: number): Uint8Array {
  if (bytes.length <= n) return bytes;
  let end = n;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/**
 * What pg_prepared_statements and pg_cursors show of a session's statement
 * or cursor: the name PostgreSQL keeps, where the engine's ends in a hash;
 * or a text of its PREPARE or DECLARE as the client sent it, and as the
 * engine got it.
 */
export interface ShownName {
  readonly engine: string;
  readonly client?: string;
  readonly original?: string;
  readonly rewritten?: string;
}

/**
 * What the views show (activity.ts, `pgts_statement_names()`) of session
 * `prefix`'s names that end in a hash on the engine, and of the statements
 * and cursors whose texts `written` has (the session's writtenTexts).
 */
export function shownNames(
  prefix: string,
  written: Iterable<
    { readonly engine: string; readonly original: string; readonly rewritten: string }
  >,
): ShownName[] {
  const out: ShownName[] = [];
  for (const [onEngine, kept] of hashedNames) {
    if (onEngine.startsWith(prefix)) out.push({ engine: onEngine, client: kept });
  }
  for (const t of written) {
    out.push({ engine: t.engine, original: t.original, rewritten: t.rewritten });
  }
  return out;
}

/** Takes a session's prefix out of a server message (`"pgts3.…:s1"` back to `"s1"`). */
export function publicText(text: string, prefix: string): string {
  if (!text.includes(prefix)) return text;
  // A name too long for the prefix is shown as PostgreSQL keeps it, not hashed.
  if (hashedNames.size > 0 && text.includes("~")) {
    for (const [onEngine, kept] of hashedNames) {
      if (onEngine.startsWith(prefix) && text.includes(`"${onEngine}"`)) {
        text = text.replaceAll(`"${onEngine}"`, `"${kept}"`);
      }
    }
  }
  return text.replaceAll(`"${prefix}`, '"');
}
