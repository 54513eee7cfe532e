/**
 * Encoding conversions for PGlite's Postgres, done on the engine's thread.
 *
 * PGlite ships PostgreSQL's conversion libraries (utf8_and_iso8859.so and
 * the others), but its main module does not export what they call
 * (pg_utf_mblen, report_invalid_encoding, …): the first real conversion
 * runs into a missing import, the statement ends with no rows and no
 * error, and the backend is broken for every session after it
 * (electric-sql/pglite#1076). Postgres finds a conversion's C function
 * with dlsym, once per function; `wrapConversionSymbols` answers that
 * lookup, for every conversion function of pg_conversion, with one host
 * function (`convert`) that converts as those libraries do: the same
 * arguments (source and destination encoding, source, destination buffer,
 * length, noError), the same result (the source bytes converted), and the
 * same errors — 22021 `invalid byte sequence for encoding "X": 0x..` and
 * 22P05 `character with byte sequence 0x.. in encoding "X" has no
 * equivalent in encoding "Y"`. So client_encoding, convert(),
 * convert_from(), convert_to() and COPY … ENCODING work as in PostgreSQL.
 *
 * The character tables are the WHATWG Encoding Standard's, which
 * TextDecoder carries in Bun and Deno, read once per encoding on first
 * use: the single-byte encodings (LATIN1 to LATIN10, ISO_8859_5 to 8,
 * WIN866, WIN874, WIN1250 to WIN1258, KOI8R, KOI8U) and SJIS, EUC_JP,
 * EUC_KR, UHC, EUC_CN, GBK, GB18030 and BIG5, corrected where PostgreSQL's
 * own tables differ (PG_DIFFERENCES, PG_WRITES: measured against
 * PostgreSQL 15 both ways, after which every sequence and character
 * measured converts as there). EUC_TW, EUC_JIS_2004,
 * SHIFT_JIS_2004, JOHAB and MULE_INTERNAL have no table here: a conversion
 * to or from one is refused (0A000), and so is such a client_encoding
 * (encoding.ts).
 */

import type { WasmTools } from "./wasmtools.ts";
import { argDatum } from "./backends.ts";
import { message } from "./wire.ts";

/** PostgreSQL's encodings by id (pg_wchar.h's pg_enc). */
export const ENCODING_NAMES = [
  "SQL_ASCII",
  "EUC_JP",
  "EUC_CN",
  "EUC_KR",
  "EUC_TW",
  "EUC_JIS_2004",
  "UTF8",
  "MULE_INTERNAL",
  "LATIN1",
  "LATIN2",
  "LATIN3",
  "LATIN4",
  "LATIN5",
  "LATIN6",
  "LATIN7",
  "LATIN8",
  "LATIN9",
  "LATIN10",
  "WIN1256",
  "WIN1258",
  "WIN866",
  "WIN874",
  "KOI8R",
  "WIN1251",
  "WIN1252",
  "ISO_8859_5",
  "ISO_8859_6",
  "ISO_8859_7",
  "ISO_8859_8",
  "WIN1250",
  "WIN1253",
  "WIN1254",
  "WIN1255",
  "WIN1257",
  "KOI8U",
  "SJIS",
  "BIG5",
  "GBK",
  "UHC",
  "GB18030",
  "JOHAB",
  "SHIFT_JIS_2004",
] as const;

/** The hint of a refused conversion. */
export const CONVERTED_ENCODINGS = "pgts converts UTF8 to and from the LATIN, WIN, ISO_8859 " +
  "and KOI8 encodings, SJIS, EUC_JP, EUC_KR, EUC_CN, UHC, GBK, GB18030 and BIG5.";

const SQL_ASCII = 0;
const UTF8 = 6;

/** Other names PostgreSQL takes for an encoding (encnames.c), cleaned as it cleans them. */
const ALIASES: Readonly<Record<string, string>> = {
  abc: "WIN1258",
  alt: "WIN866",
  iso88591: "LATIN1",
  iso88592: "LATIN2",
  iso88593: "LATIN3",
  iso88594: "LATIN4",
  iso88599: "LATIN5",
  iso885910: "LATIN6",
  iso885913: "LATIN7",
  iso885914: "LATIN8",
  iso885915: "LATIN9",
  iso885916: "LATIN10",
  iso88595: "ISO_8859_5",
  iso88596: "ISO_8859_6",
  iso88597: "ISO_8859_7",
  iso88598: "ISO_8859_8",
  koi8: "KOI8R",
  mskanji: "SJIS",
  shiftjis: "SJIS",
  tcvn: "WIN1258",
  tcvn5712: "WIN1258",
  unicode: "UTF8",
  vscii: "WIN1258",
  win: "WIN1251",
  win932: "SJIS",
  win936: "GBK",
  win949: "UHC",
  win950: "BIG5",
  windows932: "SJIS",
  windows936: "GBK",
  windows949: "UHC",
  windows950: "BIG5",
};

/**
 * The encoding id PostgreSQL gives `name` (pg_char_to_encoding: letters
 * and digits only, any case, and the aliases), or -1.
 */
export function encodingId(name: string): number {
  const clean = name.toLowerCase().replace(/[^a-z0-9]/g, "");
  if (clean === "") return -1;
  const alias = ALIASES[clean];
  if (alias !== undefined) return ENCODING_NAMES.indexOf(alias as typeof ENCODING_NAMES[number]);
  // windows1252 is WIN1252, windows866 WIN866, …
  if (/^windows(125[0-8]|866|874)$/.test(clean)) return encodingId(`win${clean.slice(7)}`);
  return ENCODING_NAMES.findIndex((n) => n.toLowerCase().replace(/_/g, "") === clean);
}

/** Whether pgts converts between encoding `id` and UTF8 (or need not: UTF8, SQL_ASCII). */
export function convertible(id: number): boolean {
  return id === UTF8 || id === SQL_ASCII || SOURCES[id] !== undefined;
}

/**
 * Text a client sent in its client_encoding `name` (what pgts keeps of a
 * session's input: pg_stat_activity's query), read as PostgreSQL would
 * after converting it. A byte that is not a character reads as U+FFFD.
 */
export function decodeIn(name: string | undefined, bytes: Uint8Array): string {
  const id = name === undefined ? UTF8 : encodingId(name);
  const source = SOURCES[id];
  if (source === undefined) return new TextDecoder().decode(bytes);
  if (source === "latin1") return String.fromCharCode(...bytes);
  return new TextDecoder(source.label).decode(bytes);
}

/**
 * An ErrorResponse or NoticeResponse the engine wrote for a client of
 * client_encoding `name`, with its fields in UTF-8 (for the server log,
 * which PostgreSQL writes in the server's encoding).
 */
export function reportInUtf8(msg: Uint8Array, name: string): Uint8Array {
  const encoder = new TextEncoder();
  const nul = Uint8Array.of(0);
  const fields: Uint8Array[] = [];
  let at = 5;
  while (at < msg.length && msg[at] !== 0) {
    let end = at + 1;
    while (end < msg.length && msg[end] !== 0) end++;
    fields.push(
      msg.subarray(at, at + 1),
      encoder.encode(decodeIn(name, msg.subarray(at + 1, end))),
      nul,
    );
    at = end + 1;
  }
  return message(msg[0]!, ...fields, nul);
}

/**
 * A character set as PostgreSQL reads it: how long a character is from
 * its first byte (pg_encoding_mblen), whether its bytes are well formed
 * (pg_encoding_verifymbchar), and its characters both ways. A character's
 * key is its bytes read as one big-endian number; `fromUnicode` keeps the
 * key times 8 plus the length.
 */
interface Charset {
  mblen(mem: Uint8Array, at: number): number;
  wellFormed(mem: Uint8Array, at: number, length: number): boolean;
  readonly toUnicode: Map<number, number>;
  readonly fromUnicode: Map<number, number>;
}

const inRange = (b: number, lo: number, hi: number) => b >= lo && b <= hi;
const highBit = (b: number) => b >= 0x80;
const eucByte = (b: number) => inRange(b, 0xa1, 0xfe);

interface SingleByteSource {
  readonly label: string;
  /** windows-*: what decodes to a C1 control is undefined in PostgreSQL's table. */
  readonly windows?: boolean;
  /** ISO-8859-9 is windows-1254 in the standard: 0x80–0x9F are the C1 controls. */
  readonly c1?: boolean;
  readonly overrides?: ReadonlyArray<readonly [number, number]>;
}

interface MultiByteSource {
  readonly label: string;
  readonly mblen: (mem: Uint8Array, at: number) => number;
  readonly wellFormed: (mem: Uint8Array, at: number, length: number) => boolean;
  /** The byte sequences the table holds, by length: [lead bytes, then each following byte]. */
  readonly ranges: ReadonlyArray<ReadonlyArray<ReadonlyArray<readonly [number, number]>>>;
  /** Sequences not to encode to when another has the character (SJIS's NEC-selected IBM rows). */
  readonly notPreferred?: (key: number, length: number) => boolean;
  /** GB18030's four-byte sequences past the BMP, by arithmetic. */
  readonly supplementary?: boolean;
}

const TRAIL_ANY: ReadonlyArray<readonly [number, number]> = [[0x40, 0x7e], [0x80, 0xfe]];

/** Two-byte encodings whose trail bytes PostgreSQL checks only for NUL (BIG5, GBK, UHC). */
const nonZeroTrail = (mem: Uint8Array, at: number, length: number) => {
  for (let j = 1; j < length; j++) if (mem[at + j] === 0) return false;
  return true;
};

/** What each encoding pgts converts is made of, by id. */
const SOURCES: ReadonlyArray<SingleByteSource | MultiByteSource | "latin1" | undefined> =
  encodingSources();

function encodingSources(): Array<SingleByteSource | MultiByteSource | "latin1" | undefined> {
  const s: Array<SingleByteSource | MultiByteSource | "latin1" | undefined> = [];
  const at = (name: typeof ENCODING_NAMES[number], v: SingleByteSource | MultiByteSource) => {
    s[ENCODING_NAMES.indexOf(name)] = v;
  };
  s[ENCODING_NAMES.indexOf("LATIN1")] = "latin1";
  at("LATIN2", { label: "iso-8859-2" });
  at("LATIN3", { label: "iso-8859-3" });
  at("LATIN4", { label: "iso-8859-4" });
  at("LATIN5", { label: "iso-8859-9", c1: true });
  at("LATIN6", { label: "iso-8859-10" });
  at("LATIN7", { label: "iso-8859-13" });
  at("LATIN8", { label: "iso-8859-14" });
  at("LATIN9", { label: "iso-8859-15" });
  at("LATIN10", { label: "iso-8859-16" });
  for (const n of [5, 6, 7, 8] as const) at(`ISO_8859_${n}`, { label: `iso-8859-${n}` });
  for (const n of [1250, 1251, 1252, 1253, 1254, 1255, 1256, 1257, 1258] as const) {
    at(`WIN${n}`, { label: `windows-${n}`, windows: true });
  }
  at("WIN874", { label: "windows-874", windows: true });
  at("WIN866", { label: "ibm866" });
  at("KOI8R", { label: "koi8-r" });
  // The standard's koi8-u is KOI8-RU; PostgreSQL's KOI8U is RFC 2319's.
  at("KOI8U", { label: "koi8-u", overrides: [[0xae, 0x255d], [0xbe, 0x256c]] });

  // The multi-byte ones: each range list gives the lead bytes, then each following byte.
  const twoByte = (m: Uint8Array, i: number) => (highBit(m[i]!) ? 2 : 1);
  const euc2 = (m: Uint8Array, i: number, l: number) =>
    l === 2 && eucByte(m[i]!) && eucByte(m[i + 1]!);
  at("EUC_JP", {
    label: "euc-jp",
    mblen: (m, i) => (m[i] === 0x8f ? 3 : highBit(m[i]!) ? 2 : 1),
    wellFormed: (m, i, l) =>
      m[i] === 0x8e
        ? l === 2 && inRange(m[i + 1]!, 0xa1, 0xdf)
        : m[i] === 0x8f
        ? l === 3 && eucByte(m[i + 1]!) && eucByte(m[i + 2]!)
        : euc2(m, i, l),
    ranges: [
      [[[0xa1, 0xfe]], [[0xa1, 0xfe]]],
      [[[0x8e, 0x8e]], [[0xa1, 0xdf]]],
      [[[0x8f, 0x8f]], [[0xa1, 0xfe]], [[0xa1, 0xfe]]],
    ],
  });
  at("SJIS", {
    label: "shift_jis",
    mblen: (m, i) => (inRange(m[i]!, 0xa1, 0xdf) ? 1 : highBit(m[i]!) ? 2 : 1),
    wellFormed: (m, i, l) =>
      l === 1 ||
      ((inRange(m[i]!, 0x81, 0x9f) || inRange(m[i]!, 0xe0, 0xfc)) &&
        (inRange(m[i + 1]!, 0x40, 0x7e) || inRange(m[i + 1]!, 0x80, 0xfc))),
    ranges: [
      [[[0xa1, 0xdf]]],
      [[[0x81, 0x9f], [0xe0, 0xfc]], [[0x40, 0x7e], [0x80, 0xfc]]],
    ],
    // The NEC-selected IBM rows (0xED, 0xEE) repeat characters of the IBM
    // rows (0xFA–0xFC), which are what Windows and PostgreSQL write.
    notPreferred: (key, length) => length === 2 && (key >> 8 === 0xed || key >> 8 === 0xee),
  });
  at("EUC_KR", {
    label: "euc-kr",
    mblen: twoByte,
    wellFormed: euc2,
    ranges: [[[[0xa1, 0xfe]], [[0xa1, 0xfe]]]],
  });
  at("EUC_CN", {
    label: "gbk",
    mblen: twoByte,
    wellFormed: euc2,
    ranges: [[[[0xa1, 0xf7]], [[0xa1, 0xfe]]]],
  });
  at("UHC", {
    label: "euc-kr",
    mblen: twoByte,
    wellFormed: nonZeroTrail,
    ranges: [[[[0x81, 0xfe]], [[0x41, 0x5a], [0x61, 0x7a], [0x81, 0xfe]]]],
  });
  at("GBK", {
    label: "gbk",
    mblen: twoByte,
    wellFormed: nonZeroTrail,
    ranges: [[[[0x81, 0xfe]], TRAIL_ANY]],
  });
  at("BIG5", {
    label: "big5",
    mblen: twoByte,
    wellFormed: nonZeroTrail,
    ranges: [[[[0xa1, 0xf9]], [[0x40, 0x7e], [0xa1, 0xfe]]]],
  });
  at("GB18030", {
    label: "gb18030",
    mblen: (m, i) => (!highBit(m[i]!) ? 1 : inRange(m[i + 1]!, 0x30, 0x39) ? 4 : 2),
    wellFormed: (m, i, l) =>
      l === 2
        ? inRange(m[i]!, 0x81, 0xfe) &&
          (inRange(m[i + 1]!, 0x40, 0x7e) || inRange(m[i + 1]!, 0x80, 0xfe))
        : inRange(m[i]!, 0x81, 0xfe) && inRange(m[i + 1]!, 0x30, 0x39) &&
          inRange(m[i + 2]!, 0x81, 0xfe) && inRange(m[i + 3]!, 0x30, 0x39),
    ranges: [
      [[[0x81, 0xfe]], TRAIL_ANY],
      [[[0x81, 0x84]], [[0x30, 0x39]], [[0x81, 0xfe]], [[0x30, 0x39]]],
    ],
    supplementary: true,
  });
  return s;
}

/**
 * Where PostgreSQL's tables differ from the standard's, as measured against
 * PostgreSQL 15 (convert_from of every two-byte sequence these encodings
 * allow, EUC_JP's three-byte ones and GB18030's four-byte ones below
 * U+10000; single-byte encodings: every byte): runs of [first sequence
 * (its bytes as one number), how many, first code point or -1 for none],
 * each sequence one past the last, each code point too. The standard maps
 * user-defined areas (SJIS F040–F9FC, GBK AAA1–AFFE, …) to the Private Use
 * Area where PostgreSQL has no character, and UHC's the other way round;
 * EUC_CN is GB2312 in PostgreSQL, BIG5 is CP950.
 */
const PG_DIFFERENCES: Readonly<Record<string, ReadonlyArray<readonly [number, number, number]>>> = {
  SJIS: [
    [0xf040, 63, -1],
    [0xf080, 125, -1],
    [0xf140, 63, -1],
    [0xf180, 125, -1],
    [0xf240, 63, -1],
    [0xf280, 125, -1],
    [0xf340, 63, -1],
    [0xf380, 125, -1],
    [0xf440, 63, -1],
    [0xf480, 125, -1],
    [0xf540, 63, -1],
    [0xf580, 125, -1],
    [0xf640, 63, -1],
    [0xf680, 125, -1],
    [0xf740, 63, -1],
    [0xf780, 125, -1],
    [0xf840, 63, -1],
    [0xf880, 125, -1],
    [0xf940, 63, -1],
    [0xf980, 125, -1],
  ],
  EUC_JP: [
    [0xf9a1, 94, -1],
    [0xfaa1, 94, -1],
    [0xfba1, 94, -1],
    [0xfca1, 78, -1],
    [0xfcf1, 14, -1],
    [0x8fa2b7, 1, -1],
    [0x8fa2c3, 1, 0xffe4],
    [0x8ff3f3, 10, 0x2170],
    [0x8ff3fd, 2, 0x2160],
    [0x8ff4a1, 8, 0x2162],
    [0x8ff4a9, 1, 0xff07],
    [0x8ff4aa, 1, 0xff02],
    [0x8ff4ab, 1, 0x3231],
    [0x8ff4ac, 1, 0x2116],
    [0x8ff4ad, 1, 0x2121],
    [0x8ff4ae, 1, 0x70bb],
    [0x8ff4af, 1, 0x4efc],
    [0x8ff4b0, 1, 0x50f4],
    [0x8ff4b1, 1, 0x51ec],
    [0x8ff4b2, 1, 0x5307],
    [0x8ff4b3, 1, 0x5324],
    [0x8ff4b4, 1, 0xfa0e],
    [0x8ff4b5, 1, 0x548a],
    [0x8ff4b6, 1, 0x5759],
    [0x8ff4b7, 2, 0xfa0f],
    [0x8ff4b9, 1, 0x589e],
    [0x8ff4ba, 1, 0x5bec],
    [0x8ff4bb, 1, 0x5cf5],
    [0x8ff4bc, 1, 0x5d53],
    [0x8ff4bd, 1, 0xfa11],
    [0x8ff4be, 1, 0x5fb7],
    [0x8ff4bf, 1, 0x6085],
    [0x8ff4c0, 1, 0x6120],
    [0x8ff4c1, 1, 0x654e],
    [0x8ff4c2, 1, 0x663b],
    [0x8ff4c3, 1, 0x6665],
    [0x8ff4c4, 1, 0xfa12],
    [0x8ff4c5, 1, 0xf929],
    [0x8ff4c6, 1, 0x6801],
    [0x8ff4c7, 2, 0xfa13],
    [0x8ff4c9, 1, 0x6a6b],
    [0x8ff4ca, 1, 0x6ae2],
    [0x8ff4cb, 1, 0x6df8],
    [0x8ff4cc, 1, 0x6df2],
    [0x8ff4cd, 1, 0x7028],
    [0x8ff4ce, 2, 0xfa15],
    [0x8ff4d0, 1, 0x7501],
    [0x8ff4d1, 1, 0x7682],
    [0x8ff4d2, 1, 0x769e],
    [0x8ff4d3, 1, 0xfa17],
    [0x8ff4d4, 1, 0x7930],
    [0x8ff4d5, 4, 0xfa18],
    [0x8ff4d9, 1, 0x7ae7],
    [0x8ff4da, 2, 0xfa1c],
    [0x8ff4dc, 1, 0x7da0],
    [0x8ff4dd, 1, 0x7dd6],
    [0x8ff4de, 1, 0xfa1e],
    [0x8ff4df, 1, 0x8362],
    [0x8ff4e0, 1, 0xfa1f],
    [0x8ff4e1, 1, 0x85b0],
    [0x8ff4e2, 2, 0xfa20],
    [0x8ff4e4, 1, 0x8807],
    [0x8ff4e5, 1, 0xfa22],
    [0x8ff4e6, 1, 0x8b7f],
    [0x8ff4e7, 1, 0x8cf4],
    [0x8ff4e8, 1, 0x8d76],
    [0x8ff4e9, 3, 0xfa23],
    [0x8ff4ec, 1, 0x90de],
    [0x8ff4ed, 1, 0xfa26],
    [0x8ff4ee, 1, 0x9115],
    [0x8ff4ef, 2, 0xfa27],
    [0x8ff4f1, 1, 0x9592],
    [0x8ff4f2, 1, 0xf9dc],
    [0x8ff4f3, 1, 0xfa29],
    [0x8ff4f4, 1, 0x973b],
    [0x8ff4f5, 1, 0x974d],
    [0x8ff4f6, 1, 0x9751],
    [0x8ff4f7, 3, 0xfa2a],
    [0x8ff4fa, 1, 0x999e],
    [0x8ff4fb, 1, 0x9ad9],
    [0x8ff4fc, 1, 0x9b72],
    [0x8ff4fd, 1, 0xfa2d],
    [0x8ff4fe, 1, 0x9ed1],
  ],
  EUC_KR: [[0xa2e8, 1, 0x327e]],
  UHC: [[0xa2e8, 1, 0x327e], [0xc9a1, 94, 0xe000], [0xfea1, 94, 0xe05e]],
  EUC_CN: [
    [0xa1a4, 1, 0x30fb],
    [0xa1aa, 1, 0x2015],
    [0xa2a1, 16, -1],
    [0xa2e3, 2, -1],
    [0xa2ef, 2, -1],
    [0xa2fd, 2, -1],
    [0xa4f4, 11, -1],
    [0xa5f7, 8, -1],
    [0xa6b9, 8, -1],
    [0xa6d9, 38, -1],
    [0xa7c2, 15, -1],
    [0xa7f2, 13, -1],
    [0xa8bb, 10, -1],
    [0xa8ea, 21, -1],
    [0xa9a1, 3, -1],
    [0xa9f0, 15, -1],
    [0xaaa1, 94, -1],
    [0xaba1, 94, -1],
    [0xaca1, 94, -1],
    [0xada1, 94, -1],
    [0xaea1, 94, -1],
    [0xafa1, 94, -1],
    [0xd7fa, 5, -1],
  ],
  GBK: [
    [0xa140, 63, -1],
    [0xa180, 33, -1],
    [0xa240, 63, -1],
    [0xa280, 33, -1],
    [0xa2ab, 6, -1],
    [0xa2e3, 2, -1],
    [0xa2ef, 2, -1],
    [0xa2fd, 2, -1],
    [0xa340, 63, -1],
    [0xa380, 33, -1],
    [0xa440, 63, -1],
    [0xa480, 33, -1],
    [0xa4f4, 11, -1],
    [0xa540, 63, -1],
    [0xa580, 33, -1],
    [0xa5f7, 8, -1],
    [0xa640, 63, -1],
    [0xa680, 33, -1],
    [0xa6b9, 8, -1],
    [0xa6d9, 7, -1],
    [0xa6ec, 2, -1],
    [0xa6f3, 1, -1],
    [0xa6f6, 9, -1],
    [0xa740, 63, -1],
    [0xa780, 33, -1],
    [0xa7c2, 15, -1],
    [0xa7f2, 13, -1],
    [0xa896, 11, -1],
    [0xa8bc, 1, -1],
    [0xa8bf, 1, -1],
    [0xa8c1, 4, -1],
    [0xa8ea, 21, -1],
    [0xa958, 1, -1],
    [0xa95b, 1, -1],
    [0xa95d, 3, -1],
    [0xa989, 13, -1],
    [0xa997, 13, -1],
    [0xa9f0, 15, -1],
    [0xaaa1, 94, -1],
    [0xaba1, 94, -1],
    [0xaca1, 94, -1],
    [0xada1, 94, -1],
    [0xaea1, 94, -1],
    [0xafa1, 94, -1],
    [0xd7fa, 5, -1],
    [0xf8a1, 94, -1],
    [0xf9a1, 94, -1],
    [0xfaa1, 94, -1],
    [0xfba1, 94, -1],
    [0xfca1, 94, -1],
    [0xfda1, 94, -1],
    [0xfe50, 47, -1],
    [0xfe80, 127, -1],
  ],
  BIG5: [
    [0xa145, 1, 0x2022],
    [0xa14e, 1, 0xff64],
    [0xa15a, 1, 0xfffd],
    [0xa1c2, 1, 0x203e],
    [0xa1c3, 1, 0xfffd],
    [0xa1c5, 1, 0xfffd],
    [0xa1e3, 1, 0x223c],
    [0xa1f2, 1, 0x2641],
    [0xa1f3, 1, 0x2609],
    [0xa1fe, 1, 0xfffd],
    [0xa240, 1, 0xfffd],
    [0xa241, 1, 0xff0f],
    [0xa242, 1, 0xff3c],
    [0xa244, 1, 0xa5],
    [0xa246, 2, 0xa2],
    [0xa2cc, 1, 0xfffd],
    [0xa2ce, 1, 0xfffd],
    [0xa3c0, 34, -1],
    [0xc6a1, 1, 0x30fe],
    [0xc6a2, 2, 0x309d],
    [0xc6a4, 1, 0x3005],
    [0xc6a5, 83, 0x3041],
    [0xc6f8, 7, 0x30a1],
    [0xc740, 63, 0x30a8],
    [0xc7a1, 16, 0x30e7],
    [0xc7b1, 2, 0x414],
    [0xc7b3, 1, 0x401],
    [0xc7b4, 7, 0x416],
    [0xc7bb, 19, 0x423],
    [0xc7ce, 1, 0x451],
    [0xc7cf, 26, 0x436],
    [0xc7e9, 10, 0x2460],
    [0xc7f3, 10, 0x2474],
    [0xc7fd, 2, -1],
    [0xc840, 63, -1],
    [0xc8a1, 4, -1],
    [0xc8cd, 37, -1],
    [0xc8f5, 10, -1],
    [0xf9dd, 34, -1],
  ],
  GB18030: [
    [0xa3a0, 1, 0xe5e5],
    [0xa6d9, 7, 0xe78d],
    [0xa6ec, 2, 0xe794],
    [0xa6f3, 1, 0xe796],
    [0xa8bc, 1, 0xe7c7],
    [0xfe59, 1, 0xe81e],
    [0xfe61, 1, 0xe826],
    [0xfe66, 2, 0xe82b],
    [0xfe6d, 1, 0xe832],
    [0xfe7e, 1, 0xe843],
    [0xfe90, 1, 0xe854],
    [0xfea0, 1, 0xe864],
    [0x8135f437, 1, 0x1e3f],
    [0x8431a437, 1, 0xfffd],
  ],
  WIN1255: [[0xca, 1, -1]],
};

/**
 * Characters PostgreSQL writes other than the first sequence its table
 * reads them from, or writes though no sequence reads as them (¥ as SJIS
 * 0x5C, € as GBK 0x80), measured as PG_DIFFERENCES was (convert_to of
 * every character any of these encodings has): [code point, sequence].
 */
const PG_WRITES: Readonly<Record<string, ReadonlyArray<readonly [number, number]>>> = {
  SJIS: [
    [0xa2, 0x8191],
    [0xa3, 0x8192],
    [0xa5, 0x5c],
    [0xac, 0x81ca],
    [0x2016, 0x8161],
    [0x203e, 0x7e],
    [0x2116, 0xfa59],
    [0x2121, 0xfa5a],
    [0x2160, 0xfa4a],
    [0x2161, 0xfa4b],
    [0x2162, 0xfa4c],
    [0x2163, 0xfa4d],
    [0x2164, 0xfa4e],
    [0x2165, 0xfa4f],
    [0x2166, 0xfa50],
    [0x2167, 0xfa51],
    [0x2168, 0xfa52],
    [0x2169, 0xfa53],
    [0x2212, 0x817c],
    [0x301c, 0x8160],
    [0x3231, 0xfa58],
  ],
  EUC_JP: [[0xa6, 0x8fa2c3]],
  GBK: [[0x20ac, 0x80]],
};

/** The character sets read so far, by encoding id (one reading per thread). */
const charsets = new Map<number, Charset>();

function charsetOf(id: number): Charset | null {
  const known = charsets.get(id);
  if (known !== undefined) return known;
  const source = SOURCES[id];
  if (source === undefined) return null;
  const name = ENCODING_NAMES[id]!;
  const made = source === "latin1"
    ? singleByte({ label: "" }, name)
    : "ranges" in source
    ? multiByte(source, name)
    : singleByte(source, name);
  charsets.set(id, made);
  return made;
}

function singleByte(source: SingleByteSource, name: string): Charset {
  const toUnicode = new Map<number, number>();
  const fromUnicode = new Map<number, number>();
  const decoder = source.label === "" ? null : new TextDecoder(source.label);
  for (let b = 0x80; b <= 0xff; b++) {
    let cp: number | undefined = b; // LATIN1: the byte is the code point
    if (decoder !== null && !(source.c1 === true && b < 0xa0)) {
      const s = decoder.decode(Uint8Array.of(b));
      cp = s.length === 1 ? s.codePointAt(0) : undefined;
      if (
        cp === 0xfffd || (source.windows === true && cp !== undefined && inRange(cp, 0x80, 0x9f))
      ) {
        cp = undefined;
      }
    }
    const override = source.overrides?.find(([byte]) => byte === b);
    if (override !== undefined) cp = override[1];
    if (cp !== undefined) toUnicode.set(b, cp);
  }
  applyDifferences(toUnicode, name);
  for (const [b, cp] of toUnicode) if (!fromUnicode.has(cp)) fromUnicode.set(cp, b * 8 + 1);
  return { mblen: () => 1, wellFormed: () => true, toUnicode, fromUnicode };
}

/** PostgreSQL's characters where its table differs from the standard's (PG_DIFFERENCES). */
function applyDifferences(toUnicode: Map<number, number>, name: string): void {
  for (const [first, count, cp] of PG_DIFFERENCES[name] ?? []) {
    for (let i = 0; i < count; i++) {
      if (cp < 0) toUnicode.delete(first + i);
      else toUnicode.set(first + i, cp + i);
    }
  }
}

/** How many bytes a table key stands for. */
function keyLength(key: number): number {
  return key < 0x100 ? 1 : key < 0x10000 ? 2 : key < 0x1000000 ? 3 : 4;
}

/**
 * A multi-byte table, read by decoding every sequence its ranges allow:
 * all of them in one call, each followed by a newline, which every
 * decoder of the standard gives back as it is, even after a sequence it
 * rejects. A sequence that decodes to one character, not U+FFFD, is one.
 */
function multiByte(source: MultiByteSource, name: string): Charset {
  const toUnicode = new Map<number, number>();
  const fromUnicode = new Map<number, number>();
  const decoder = new TextDecoder(source.label);
  for (const kind of source.ranges) {
    const keys: number[] = [];
    let seqs: number[][] = [[]];
    for (const position of kind) {
      const next: number[][] = [];
      for (const seq of seqs) {
        for (const [lo, hi] of position) for (let b = lo; b <= hi; b++) next.push([...seq, b]);
      }
      seqs = next;
    }
    const length = kind.length;
    const bytes = new Uint8Array(seqs.length * (length + 1));
    let at = 0;
    for (const seq of seqs) {
      let key = 0;
      for (const b of seq) {
        bytes[at++] = b;
        key = key * 256 + b;
      }
      bytes[at++] = 0x0a;
      keys.push(key);
    }
    const decoded = decoder.decode(bytes).split("\n");
    for (let i = 0; i < keys.length; i++) {
      const s = decoded[i]!;
      const cp = s.codePointAt(0);
      if (cp === undefined || cp === 0xfffd || s.length !== (cp > 0xffff ? 2 : 1)) continue;
      toUnicode.set(keys[i]!, cp);
    }
  }
  applyDifferences(toUnicode, name);
  // Encoding: the first sequence of a character, in byte order, but for
  // those the encoding's own writers avoid.
  for (const key of [...toUnicode.keys()].sort((a, b) => a - b)) {
    const cp = toUnicode.get(key)!;
    const length = keyLength(key);
    const had = fromUnicode.get(cp);
    if (
      had === undefined ||
      (source.notPreferred?.(Math.floor(had / 8), had % 8) === true &&
        !source.notPreferred(key, length))
    ) {
      fromUnicode.set(cp, key * 8 + length);
    }
  }
  for (const [cp, key] of PG_WRITES[name] ?? []) fromUnicode.set(cp, key * 8 + keyLength(key));
  return { mblen: source.mblen, wellFormed: source.wellFormed, toUnicode, fromUnicode };
}

/** GB18030's four bytes for a code point past the BMP (its linear range from 0x90308130). */
function gb18030Supplementary(cp: number): number {
  let n = cp - 0x10000;
  const b4 = 0x30 + (n % 10);
  n = Math.floor(n / 10);
  const b3 = 0x81 + (n % 126);
  n = Math.floor(n / 126);
  const b2 = 0x30 + (n % 10);
  const b1 = 0x90 + Math.floor(n / 10);
  return ((b1 * 256 + b2) * 256 + b3) * 256 + b4;
}

function gb18030CodePoint(m: Uint8Array, i: number): number | undefined {
  const b1 = m[i]!;
  if (b1 < 0x90 || b1 > 0xe3) return undefined;
  const n = (((b1 - 0x90) * 10 + (m[i + 1]! - 0x30)) * 126 + (m[i + 2]! - 0x81)) * 10 +
    (m[i + 3]! - 0x30);
  const cp = 0x10000 + n;
  return cp <= 0x10ffff ? cp : undefined;
}

/** pg_utf_mblen. */
function utf8Length(b: number): number {
  return (b & 0xe0) === 0xc0 ? 2 : (b & 0xf0) === 0xe0 ? 3 : (b & 0xf8) === 0xf0 ? 4 : 1;
}

/** pg_utf8_islegal: the shortest form, no surrogates, nothing past U+10FFFF. */
function utf8Legal(m: Uint8Array, i: number, l: number): boolean {
  const a = m[i]!;
  if (l === 1) return a < 0x80;
  for (let j = 2; j < l; j++) if (!inRange(m[i + j]!, 0x80, 0xbf)) return false;
  const b = m[i + 1]!;
  switch (a) {
    case 0xe0:
      if (!inRange(b, 0xa0, 0xbf)) return false;
      break;
    case 0xed:
      if (!inRange(b, 0x80, 0x9f)) return false;
      break;
    case 0xf0:
      if (!inRange(b, 0x90, 0xbf)) return false;
      break;
    case 0xf4:
      if (!inRange(b, 0x80, 0x8f)) return false;
      break;
    default:
      if (!inRange(b, 0x80, 0xbf)) return false;
  }
  return a >= 0xc2 && a <= 0xf4;
}

function utf8CodePoint(m: Uint8Array, i: number, l: number): number {
  if (l === 2) return ((m[i]! & 0x1f) << 6) | (m[i + 1]! & 0x3f);
  if (l === 3) return ((m[i]! & 0x0f) << 12) | ((m[i + 1]! & 0x3f) << 6) | (m[i + 2]! & 0x3f);
  return ((m[i]! & 0x07) << 18) | ((m[i + 1]! & 0x3f) << 12) | ((m[i + 2]! & 0x3f) << 6) |
    (m[i + 3]! & 0x3f);
}

function writeUtf8(m: Uint8Array, o: number, cp: number): number {
  if (cp < 0x800) {
    m[o++] = 0xc0 | (cp >> 6);
  } else if (cp < 0x10000) {
    m[o++] = 0xe0 | (cp >> 12);
    m[o++] = 0x80 | ((cp >> 6) & 0x3f);
  } else {
    m[o++] = 0xf0 | (cp >> 18);
    m[o++] = 0x80 | ((cp >> 12) & 0x3f);
    m[o++] = 0x80 | ((cp >> 6) & 0x3f);
  }
  m[o++] = 0x80 | (cp & 0x3f);
  return o;
}

/** A character's first bytes as PostgreSQL's messages print them: `0xe2 0x82 0xac`. */
function byteList(m: Uint8Array, i: number, n: number): string {
  const out: string[] = [];
  for (let j = 0; j < Math.min(n, 8); j++) out.push(`0x${m[i + j]!.toString(16).padStart(2, "0")}`);
  return out.join(" ");
}

/**
 * One conversion call, as PostgreSQL's conversion functions make it:
 * `len` bytes at `src` in encoding `from` into `dest` (room for four bytes
 * a byte, and the NUL) in encoding `to`. Stops at the first byte sequence
 * that is invalid in `from` or a character `to` does not have: with
 * noError, returning the bytes converted before it; otherwise raising
 * PostgreSQL's error for it.
 */
function convert(
  tools: WasmTools,
  from: number,
  to: number,
  src: number,
  dest: number,
  len: number,
  noError: boolean,
): number {
  const fromSet = from === UTF8 ? null : charsetOf(from);
  const toSet = to === UTF8 ? null : charsetOf(to);
  if ((from !== UTF8 && fromSet === null) || (to !== UTF8 && toSet === null)) {
    const other = fromSet === null && from !== UTF8 ? from : to;
    tools.raise(
      "0A000",
      `conversion to or from encoding "${
        ENCODING_NAMES[other] ?? other
      }" is not supported by the embedded engine`,
      "Conversion between encodings is not supported.",
      { hint: CONVERTED_ENCODINGS },
    );
  }
  const m = tools.bytes();
  const end = src + len;
  let i = src;
  let o = dest;
  let failure: "invalid" | "untranslatable" | null = null;
  let failedLength = 1;
  while (i < end) {
    const b = m[i]!;
    if (b === 0) {
      failure = "invalid";
      break;
    }
    if (b < 0x80) {
      m[o++] = b;
      i++;
      continue;
    }
    let l: number;
    let cp: number | undefined;
    if (fromSet === null) {
      l = utf8Length(b);
      failedLength = l;
      if (i + l > end || !utf8Legal(m, i, l)) {
        failure = "invalid";
        break;
      }
      cp = utf8CodePoint(m, i, l);
    } else {
      l = fromSet.mblen(m, i);
      failedLength = l;
      if (i + l > end || !fromSet.wellFormed(m, i, l) || !nonZero(m, i, l)) {
        failure = "invalid";
        break;
      }
      let key = 0;
      for (let j = 0; j < l; j++) key = key * 256 + m[i + j]!;
      cp = fromSet.toUnicode.get(key) ??
        (l === 4 && from === GB18030 ? gb18030CodePoint(m, i) : undefined);
    }
    let out: number | undefined;
    if (cp !== undefined && toSet !== null) {
      out = toSet.fromUnicode.get(cp) ??
        (to === GB18030 && cp > 0xffff ? gb18030Supplementary(cp) * 8 + 4 : undefined);
    }
    if (cp === undefined || (toSet !== null && out === undefined)) {
      failure = "untranslatable";
      break;
    }
    if (toSet === null) o = writeUtf8(m, o, cp);
    else {
      const n = out! % 8;
      let key = Math.floor(out! / 8);
      for (let j = n - 1; j >= 0; j--) {
        m[o + j] = key % 256;
        key = Math.floor(key / 256);
      }
      o += n;
    }
    i += l;
  }
  if (failure !== null && !noError) {
    const remaining = end - i;
    if (failure === "invalid") {
      tools.raise(
        "22021",
        `invalid byte sequence for encoding "${ENCODING_NAMES[from]}": ${
          byteList(m, i, Math.min(failedLength, remaining))
        }`,
      );
    } else {
      tools.raise(
        "22P05",
        `character with byte sequence ${
          byteList(m, i, Math.min(failedLength, remaining))
        } in encoding "${ENCODING_NAMES[from]}" has no equivalent in encoding "${
          ENCODING_NAMES[to]
        }"`,
      );
    }
  }
  m[o] = 0;
  return i - src;
}

const GB18030 = ENCODING_NAMES.indexOf("GB18030");

function nonZero(m: Uint8Array, i: number, l: number): boolean {
  for (let j = 1; j < l; j++) if (m[i + j] === 0) return false;
  return true;
}

/** The C functions of pg_conversion's procedures (conversion_procs/), by the names dlsym asks for. */
const CONVERSION_SYMBOL = new RegExp(
  "^(ascii|big5|euc_cn|euc_jp|euc_kr|euc_tw|euc_jis_2004|gb18030|gbk|iso|iso8859|iso8859_1|" +
    "johab|koi8r|koi8u|latin[1-4]|mic|shift_jis_2004|sjis|uhc|utf8|win|win1250|win1251|win866)" +
    "_to_(ascii|big5|euc_cn|euc_jp|euc_kr|euc_tw|euc_jis_2004|gb18030|gbk|iso|iso8859|iso8859_1|" +
    "johab|koi8r|koi8u|latin[1-4]|mic|shift_jis_2004|sjis|uhc|utf8|win|win1250|win1251|win866)$",
);

/** The host conversion function's slot in each engine's function table. */
const slots = new WeakMap<WasmTools, number>();

function conversionSlot(tools: WasmTools): number {
  let slot = slots.get(tools);
  if (slot === undefined) {
    slot = tools.addFunction((fcinfo: number) =>
      convert(
        tools,
        argDatum(tools, fcinfo, 0),
        argDatum(tools, fcinfo, 1),
        argDatum(tools, fcinfo, 2),
        argDatum(tools, fcinfo, 3),
        argDatum(tools, fcinfo, 4),
        (argDatum(tools, fcinfo, 5) & 0xff) !== 0,
      ), { params: 1, result: true });
    slots.set(tools, slot);
  }
  return slot;
}

/**
 * Makes Emscripten's dlsym answer a conversion function's name with the
 * host conversion function (once `tools()` has the engine; Postgres
 * converts nothing before pgts's first statement). The library is still
 * opened and its symbol looked up: a name it does not have stays unknown,
 * and its `pg_finfo_` record is the library's own.
 */
export function wrapConversionSymbols(
  env: Record<string, unknown>,
  tools: () => WasmTools | null,
): void {
  const dlsym = env["_dlsym_js"] as
    | ((handle: number, symbol: number, index: number) => number)
    | undefined;
  if (typeof dlsym !== "function") return;
  env["_dlsym_js"] = (handle: number, symbol: number, index: number): number => {
    const found = dlsym(handle, symbol, index);
    const t = tools();
    if (found === 0 || t === null) return found;
    return CONVERSION_SYMBOL.test(t.readCString(symbol)) ? conversionSlot(t) : found;
  };
}
