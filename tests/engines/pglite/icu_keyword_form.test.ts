/**
 * The language tags whose collation keywords icukeywords.ts writes in ICU's
 * keyword form, and the ones it leaves as they are (null): each form below
 * compares in the engine as PostgreSQL compares the tag (the end-to-end
 * test icu_collations_with_keywords_compare_as_in_postgresql checks that).
 */

import { expect, test } from "bun:test";
import { icuKeywordForm } from "../../../src/engines/pglite/icukeywords.ts";

test("collation keywords of a -u- extension in ICU's keyword form", () => {
  expect(icuKeywordForm("und-u-ks-level2")).toBe("und@colstrength=secondary");
  expect(icuKeywordForm("und-u-ks-level1")).toBe("und@colstrength=primary");
  expect(icuKeywordForm("und-u-ks-identic")).toBe("und@colstrength=identical");
  // A key alone is true; case does not matter; region and script are ICU's case.
  expect(icuKeywordForm("und-u-kn")).toBe("und@colnumeric=yes");
  expect(icuKeywordForm("UND-U-KN-TRUE")).toBe("und@colnumeric=yes");
  expect(icuKeywordForm("en-US-u-ks-level1-kf-upper")).toBe(
    "en_US@colstrength=primary;colcasefirst=upper",
  );
  expect(icuKeywordForm("sr-Latn-RS-u-ks-level2")).toBe("sr_Latn_RS@colstrength=secondary");
  expect(icuKeywordForm("und-u-ka-shifted-kv-punct")).toBe(
    "und@colalternate=shifted;maxvariable=punct",
  );
});

test("tags left as they are", () => {
  // No -u- extension, or no keyword in it.
  expect(icuKeywordForm("und")).toBeNull();
  expect(icuKeywordForm("de-DE")).toBeNull();
  expect(icuKeywordForm("und-u")).toBeNull();
  // A key or a type this file does not write: tailorings need locale data anyway.
  expect(icuKeywordForm("de-u-co-phonebk")).toBeNull();
  expect(icuKeywordForm("und-u-kr-latn-digit")).toBeNull();
  expect(icuKeywordForm("und-u-ks-level9")).toBeNull();
  // Another extension or private use, a key twice, an ICU locale ID already.
  expect(icuKeywordForm("und-u-ks-level2-x-mine")).toBeNull();
  expect(icuKeywordForm("und-t-de-u-ks-level2")).toBeNull();
  expect(icuKeywordForm("und-u-ks-level1-ks-level2")).toBeNull();
  expect(icuKeywordForm("und@colstrength=secondary")).toBeNull();
});
