/**
 * ICU collation keywords in BCP 47 form, which PGlite's ICU drops. PGlite
 * builds ICU without its locale data, and turning a language tag's `-u-`
 * keywords into the collator's attributes (`ks` to colstrength, `level2`
 * to secondary) needs that data (keyTypeData): without it
 * `CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2',
 * deterministic = false)` made a collation that compared as the root
 * collation does, silently, so that `'ANDREW' = 'Andrew' COLLATE ci` was
 * false where PostgreSQL says true. ICU's own keyword form
 * (`und@colstrength=secondary`) needs no data.
 *
 * So CREATE COLLATION's locale (or lc_collate) for provider icu, when it
 * is a tag whose `-u-` extension holds only collation keywords this file
 * knows (their keys and types are UTS #35's), is rewritten into that
 * keyword form before the statement runs, with a NOTICE that says so, as
 * PostgreSQL says so when it stores a locale in its standard form. The
 * collation then compares as PostgreSQL's does; pg_collation shows the
 * keyword form, and PostgreSQL's check of the locale warns that it could
 * not turn it back into a language tag (the same missing data). Another
 * tag is left as it was.
 */

import {
  listCells,
  onUtilityStatement,
  parsedStatement,
  STRING_SVAL,
  stringNodeValue,
  type WasmTools,
} from "./wasmtools.ts";

/** Offsets in wasm32 DefineStmt and DefElem (nodes/parsenodes.h), checked against a probe. */
const DEFINE_KIND = 4;
const DEFINE_DEFINITION = 20;
const DEFELEM_DEFNAME = 8;
const DEFELEM_ARG = 12;
/** TypeName.names: `provider = icu` is a type name to the grammar (defGetString reads it so). */
const TYPENAME_NAMES = 4;

/** UTS #35's collation keys: the ICU keyword of each, and its types' ICU values (`""`: the key alone). */
const COLLATION_KEYWORDS: ReadonlyMap<
  string,
  { readonly keyword: string; readonly types: ReadonlyMap<string, string> }
> = new Map([
  ["ks", {
    keyword: "colstrength",
    types: new Map([
      ["level1", "primary"],
      ["level2", "secondary"],
      ["level3", "tertiary"],
      ["level4", "quaternary"],
      ["identic", "identical"],
    ]),
  }],
  ["ka", {
    keyword: "colalternate",
    types: new Map([["noignore", "non-ignorable"], ["shifted", "shifted"]]),
  }],
  ["kf", {
    keyword: "colcasefirst",
    types: new Map([["upper", "upper"], ["lower", "lower"], ["false", "no"]]),
  }],
  ["kv", {
    keyword: "maxvariable",
    types: new Map([
      ["space", "space"],
      ["punct", "punct"],
      ["symbol", "symbol"],
      ["currency", "currency"],
    ]),
  }],
  ...(
    [
      ["kn", "colnumeric"],
      ["kb", "colbackwards"],
      ["kc", "colcaselevel"],
      ["kk", "colnormalization"],
    ] as const
  ).map(([key, keyword]) =>
    [key, {
      keyword,
      types: new Map([["", "yes"], ["true", "yes"], ["false", "no"]]),
    }] as const
  ),
]);

/**
 * ICU's keyword form of language tag `tag` when its only extension is a
 * `-u-` of collation keywords COLLATION_KEYWORDS knows (`und-u-ks-level2`
 * → `und@colstrength=secondary`), or null: no such keywords, or some this
 * file cannot write.
 */
export function icuKeywordForm(tag: string): string | null {
  const subtags = tag.toLowerCase().split(/[-_]/);
  const u = subtags.indexOf("u");
  if (u < 1 || !/^[a-z]{2,3}$/.test(subtags[0]!)) return null;
  const base = subtags.slice(0, u);
  // Script, region and variants only: another extension or private use is left alone.
  if (base.slice(1).some((s) => s.length === 1)) return null;
  const keywords = new Map<string, string>();
  let i = u + 1;
  if (i >= subtags.length) return null;
  while (i < subtags.length) {
    const key = subtags[i]!;
    const known = COLLATION_KEYWORDS.get(key);
    if (known === undefined) return null;
    // The key's type: the subtags up to the next key (a 2-character subtag).
    const type: string[] = [];
    for (i++; i < subtags.length && subtags[i]!.length > 2; i++) type.push(subtags[i]!);
    const value = known.types.get(type.join("-"));
    if (value === undefined || keywords.has(known.keyword)) return null;
    keywords.set(known.keyword, value);
  }
  // ICU's locale ID: language_Script_REGION_VARIANT.
  const locale = base.map((s, n) =>
    n === 0
      ? s
      : s.length === 4 && /^[a-z]/.test(s)
      ? s[0]!.toUpperCase() + s.slice(1)
      : s.toUpperCase()
  ).join("_");
  return `${locale}@${[...keywords].map(([k, v]) => `${k}=${v}`).join(";")}`;
}

/**
 * Rewrites CREATE COLLATION's ICU locale into ICU's keyword form where
 * icuKeywordForm can (see the header), with a NOTICE.
 */
export function installIcuKeywords(tools: WasmTools): void {
  const probe = parsedStatement(
    tools,
    "CREATE COLLATION pgts_probe (provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
  );
  const other = parsedStatement(tools, "CREATE AGGREGATE pgts_probe (sfunc = f, stype = int)");
  const view = tools.view();
  const defineTag = view.getUint32(probe, true);
  const collationKind = view.getInt32(probe + DEFINE_KIND, true);
  const elements = listCells(tools, view.getUint32(probe + DEFINE_DEFINITION, true));
  const name = (elem: number) =>
    tools.readCString(tools.view().getUint32(elem + DEFELEM_DEFNAME, true));
  const argOf = (elem: number | undefined) =>
    elem === undefined ? 0 : tools.view().getUint32(elem + DEFELEM_ARG, true);
  const [icu, locale] = [argOf(elements[0]), argOf(elements[1])];
  const stringTag = locale === 0 ? 0 : view.getUint32(locale, true);
  const typeNameTag = icu === 0 ? 0 : view.getUint32(icu, true);
  const icuNames = icu === 0 ? [] : listCells(tools, view.getUint32(icu + TYPENAME_NAMES, true));
  if (
    view.getUint32(other, true) !== defineTag ||
    view.getInt32(other + DEFINE_KIND, true) === collationKind ||
    elements.map(name).join() !== "provider,locale,deterministic" ||
    locale === 0 || stringNodeValue(tools, locale) !== "und-u-ks-level2" ||
    typeNameTag === stringTag || icuNames.length !== 1 ||
    view.getUint32(icuNames[0]!, true) !== stringTag ||
    stringNodeValue(tools, icuNames[0]!) !== "icu"
  ) {
    throw new Error("PGlite's DefineStmt has an unknown layout");
  }
  /** An option's value as defGetString reads a string or a one-word type name; null otherwise. */
  const textOf = (elem: number): string | null => {
    const arg = argOf(elem);
    if (arg === 0) return null;
    const tag = tools.view().getUint32(arg, true);
    if (tag === stringTag) return stringNodeValue(tools, arg);
    if (tag !== typeNameTag) return null;
    const names = listCells(tools, tools.view().getUint32(arg + TYPENAME_NAMES, true));
    return names.length === 1 ? stringNodeValue(tools, names[0]!) : null;
  };

  onUtilityStatement(tools, (stmt) => {
    const v = tools.view();
    if (
      v.getUint32(stmt, true) !== defineTag ||
      v.getInt32(stmt + DEFINE_KIND, true) !== collationKind
    ) {
      return;
    }
    const options = listCells(tools, v.getUint32(stmt + DEFINE_DEFINITION, true));
    const provider = options.find((o) => name(o).toLowerCase() === "provider");
    if (provider === undefined || textOf(provider)?.toLowerCase() !== "icu") return;
    for (const o of options) {
      if (!["locale", "lc_collate"].includes(name(o).toLowerCase())) continue;
      const arg = argOf(o);
      if (arg === 0 || tools.view().getUint32(arg, true) !== stringTag) continue;
      const tag = stringNodeValue(tools, arg);
      const form = icuKeywordForm(tag);
      if (form === null) continue;
      tools.notice(
        `using keyword form "${form}" for ICU locale "${tag}"`,
        "The embedded engine's ICU has no locale data, which reading the keywords of a language tag takes.",
      );
      tools.view().setUint32(arg + STRING_SVAL, tools.pallocCString(form), true);
    }
  });
}
