/**
 * Where pg_settings says the server's settings came from. PGlite's backend
 * takes every setting pgts passes as a start parameter (`-c`), so each one
 * read `command line`, with no sourcefile or sourceline, even a value the
 * user wrote in postgresql.conf or set with ALTER SYSTEM. In PostgreSQL
 * those read `configuration file`, with the file and the line (for
 * superusers and pg_read_all_settings).
 *
 * The values stay start parameters: they act from the backend's first
 * instant, as the file's do in PostgreSQL, and a file may name a parameter
 * PostgreSQL does not know (pgts's own), which would make the backend
 * refuse the whole file. Once the backend is up, the record of each value
 * that came from pgts's files is marked as guc.c's ProcessConfigFile marks
 * what it applies: source and reset source PGC_S_FILE, the file, the line.
 * Lowering a source from PGC_S_ARGV to PGC_S_FILE keeps the record where
 * guc.c keeps every parameter whose source is not the default (its
 * nondef_link list): both are not. Nothing set from a higher source (a
 * session's SET, ALTER ROLE … SET, a client's startup value) is changed:
 * only a reset source that was the start parameters' becomes the file's.
 *
 * A reload sets its values from the start parameters' source again
 * (configreload.ts) and they are marked the same way afterwards.
 * Runs on the thread that runs PGlite, between execs.
 */

import {
  eachGucRecord,
  GUC_NAME,
  GUC_NONDEF_LINK,
  GUC_RESET_SOURCE,
  GUC_SOURCE,
  GUC_SOURCEFILE,
  GUC_SOURCELINE,
} from "./guard.ts";
import type { WasmTools } from "./wasmtools.ts";

/** Each setting pgts's files set, with the file and its line (Guc.settingFiles). */
export type SettingFiles = Readonly<Record<string, readonly [file: string, line: number]>>;

/** guc.h's GucSource values. */
const PGC_S_DEFAULT = 0;
const PGC_S_FILE = 3;
const PGC_S_ARGV = 4;
const PGC_S_SESSION = 13;

/**
 * Marks the parameters of `files` as set from those files. Returns null,
 * or why nothing was marked (then they read `command line`, as before).
 */
export function markFileSettings(tools: WasmTools, files: SettingFiles): string | null {
  const names = Object.keys(files);
  if (names.length === 0) return null;
  const ex = tools.ex as typeof tools.ex & { free?: (p: number) => void };
  if (typeof ex.free !== "function") return "PGlite does not export free";
  const free = ex.free.bind(ex);
  const records = new Map<string, number>();
  eachGucRecord(tools, names, (name, r) => records.set(name, r));
  for (const [name, r] of records) {
    let why: string | null;
    try {
      why = layoutProblem(tools, name, r);
    } catch {
      // A pointer that led outside the instance's memory.
      why = `PGlite's configuration record of ${name} has an unknown layout`;
    }
    if (why !== null) return why;
  }
  for (const [name, r] of records) {
    const [file, line] = files[name]!;
    const v = tools.view();
    const source = v.getInt32(r + GUC_SOURCE, true);
    const reset = v.getInt32(r + GUC_RESET_SOURCE, true);
    // The file and line are written even under a higher source (a session's
    // startup value that is the reset value now), as guc.c's
    // set_config_sourcefile does: they show once the file's value is back.
    if (source === PGC_S_ARGV) v.setInt32(r + GUC_SOURCE, PGC_S_FILE, true);
    if (reset === PGC_S_ARGV) v.setInt32(r + GUC_RESET_SOURCE, PGC_S_FILE, true);
    const old = v.getUint32(r + GUC_SOURCEFILE, true);
    if (old === 0 || tools.readCString(old) !== file) {
      // guc.c's set_config_sourcefile: a malloc'd copy, the old one freed.
      const copy = tools.cString(file);
      tools.view().setUint32(r + GUC_SOURCEFILE, copy, true);
      if (old !== 0) free(old);
    }
    tools.view().setInt32(r + GUC_SOURCELINE, line, true);
  }
  return null;
}

/**
 * Why record `r` does not look like `struct config_generic` as this module
 * reads it, or null: its name is `name`; its sources are GucSource values;
 * a record not at its default is on guc.c's non-default list, whose
 * neighbours (nondef_link) are such records too or the list's head; its
 * sourcefile, if any, is a path.
 */
function layoutProblem(tools: WasmTools, name: string, r: number): string | null {
  const unknown = `PGlite's configuration record of ${name} has an unknown layout`;
  const v = tools.view();
  const namePtr = v.getUint32(r + GUC_NAME, true);
  if (namePtr === 0 || readShort(tools, namePtr).toLowerCase() !== name.toLowerCase()) {
    return unknown;
  }
  const source = v.getInt32(r + GUC_SOURCE, true);
  const reset = v.getInt32(r + GUC_RESET_SOURCE, true);
  const valid = (s: number) => s >= PGC_S_DEFAULT && s <= PGC_S_SESSION;
  if (!valid(source) || !valid(reset)) return unknown;
  if (source === PGC_S_DEFAULT) return null;
  // The file a value came from stays when a higher source overrides it
  // (PGlite's own postgresql.conf, read before the start parameters).
  const file = v.getUint32(r + GUC_SOURCEFILE, true);
  if (file !== 0 && !readShort(tools, file).startsWith("/")) return unknown;
  if (v.getInt32(r + GUC_SOURCELINE, true) < 0) return unknown;
  // dlist_node { prev, next }: a neighbour is a record's node or the head.
  for (const at of [r + GUC_NONDEF_LINK, r + GUC_NONDEF_LINK + 4]) {
    const node = v.getUint32(at, true);
    if (node === 0) return unknown;
    const other = node - GUC_NONDEF_LINK;
    const otherName = v.getUint32(other + GUC_NAME, true);
    if (
      otherName !== 0 && otherName < v.byteLength &&
      /^[a-z_.0-9]+$/i.test(readShort(tools, otherName))
    ) {
      return null;
    }
  }
  return unknown;
}

/** Up to 64 bytes of a C string: a name, or a neighbour that is not a record. */
function readShort(tools: WasmTools, p: number): string {
  const mem = new Uint8Array(tools.view().buffer);
  let end = p;
  while (end < mem.length && end < p + 64 && mem[end] !== 0) end++;
  return new TextDecoder().decode(mem.subarray(p, end));
}
