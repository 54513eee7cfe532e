/**
 * Server-side large-object files: `lo_import(path)` and `lo_export(oid,
 * path)` read and write a file of the server's, as the server's user. The
 * engine sees the host only at its own mount of the data directory: every
 * other path is its in-memory file system, so an lo_export succeeded into
 * memory (gone at the next start, never on the host) and an lo_import of a
 * host file was "No such file". The builtins' C functions are replaced, in
 * the function table slot their fmgr entries point at, by one that refuses
 * with 0A000, as COPY to or from a file is refused (guard.ts). The client's
 * side (psql's \lo_import and \lo_export, lo_open/loread/lowrite) is
 * untouched.
 */

import { builtinSlot } from "./backends.ts";
import { wasmFunction, type WasmTools } from "./wasmtools.ts";

/** pg_proc OIDs: lo_import(text), lo_export(oid, text), lo_import(text, oid). */
const F_BE_LO_IMPORT = 764;
const F_BE_LO_EXPORT = 765;
const F_BE_LO_IMPORT_WITH_OID = 767;

export function installServerFileGuard(tools: WasmTools): void {
  const table = tools.ex.__indirect_function_table;
  const slots = [F_BE_LO_IMPORT, F_BE_LO_EXPORT, F_BE_LO_IMPORT_WITH_OID].map((oid) =>
    builtinSlot(tools, oid)
  );
  if (new Set(slots).size !== slots.length) {
    throw new Error("PGlite's lo_import and lo_export share a function table slot");
  }
  const refuse = (): number => {
    tools.raise(
      "0A000",
      "server-side lo_import and lo_export are not supported by the embedded engine",
      "PGlite reaches the host's files only through its own path to the data directory:" +
        " a file named here would be written to memory and lost, or not found.",
      {
        hint:
          "Use the client's side: psql's \\lo_import and \\lo_export, or lo_open with loread and lowrite.",
      },
    );
    return 0;
  };
  const fn = wasmFunction(refuse, { params: 1, result: true });
  for (const slot of slots) table.set(slot, fn);
}
