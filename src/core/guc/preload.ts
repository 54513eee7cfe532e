/**
 * shared_preload_libraries for pgts: each list item names a background
 * worker entry, a module and one of its exports, instead of a C library.
 *
 * Syntax of one item: `MODULE[#EXPORT]`
 *   - MODULE is a URL (`file:///srv/w.ts`, `npm:pkg`, `jsr:@x/y`), an absolute
 *     path (`/srv/w.ts`), a path relative to the data directory (`./w.ts`,
 *     `../lib/w.ts`), or a bare package specifier (`my-workers`);
 *   - EXPORT is the name of the exported function; it defaults to `main`.
 * Items are separated by commas; double-quote an item that contains a comma
 * or spaces: shared_preload_libraries = './audit.ts#auditWorker, "/srv/a b.ts"'.
 *
 * What the postmaster does with each entry (register it as a background
 * worker, call it as a `_PG_init`-like registrar) is the postmaster's
 * business; this module only reads the syntax. Web-standard APIs only.
 */

import type { ChildEntry } from "../adapter.ts";
import type { CheckFailure } from "./values.ts";
import { splitList } from "./values.ts";

export const DEFAULT_PRELOAD_EXPORT = "main";

const schemeRe = /^[A-Za-z][A-Za-z0-9+.-]+:/;
const exportRe = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function fileUrl(path: string): string {
  return new URL(`file://${path.split("/").map(encodeURIComponent).join("/")}`).href;
}

function parseItem(item: string, dataDir: string | undefined): ChildEntry | CheckFailure {
  const hash = item.lastIndexOf("#");
  const spec = hash < 0 ? item : item.slice(0, hash);
  const name = hash < 0 ? DEFAULT_PRELOAD_EXPORT : item.slice(hash + 1);
  if (spec === "") return { detail: `Entry "${item}" names no module.` };
  if (!exportRe.test(name)) {
    return { detail: `Entry "${item}" names an invalid export "${name}".` };
  }
  let module: string;
  if (schemeRe.test(spec)) module = spec;
  else if (spec.startsWith("/")) module = fileUrl(spec);
  else if (spec.startsWith("./") || spec.startsWith("../")) {
    if (dataDir === undefined) module = spec;
    else module = new URL(spec, fileUrl(dataDir.endsWith("/") ? dataDir : `${dataDir}/`)).href;
  } else module = spec;
  return { module, export: name };
}

/** Checks the syntax of a shared_preload_libraries value (a GUC check hook). */
export function checkPreloadLibraries(value: string): CheckFailure | null {
  const items = splitList(value);
  if (items === null) return { detail: "List syntax is invalid." };
  for (const item of items) {
    const r = parseItem(item, undefined);
    if (!("module" in r)) return r;
  }
  return null;
}

/**
 * The worker entries named by a shared_preload_libraries value; relative
 * paths are resolved against `dataDir`. Throws a TypeError on bad syntax
 * (values from the configuration were already checked).
 */
export function parsePreloadLibraries(
  value: string,
  options: { dataDir?: string } = {},
): ChildEntry[] {
  const items = splitList(value);
  if (items === null) throw new TypeError(`Invalid list syntax in "${value}"`);
  return items.map((item) => {
    const r = parseItem(item, options.dataDir);
    if (!("module" in r)) throw new TypeError(r.detail ?? `Invalid entry "${item}"`);
    return r;
  });
}
