/**
 * The encoding guard: PGlite converts no encodings. Its build has none of
 * PostgreSQL's conversion procedures working: the first real conversion
 * (UTF8 to LATIN1, say) does not fail, it spins inside the one backend —
 * the statement never ends, no cancel reaches it, and every session waits
 * behind it until the engine is killed (electric-sql/pglite#1076). So every
 * road to a conversion is closed inside the backend, before it is taken,
 * with an error PostgreSQL itself gives when a conversion does not exist:
 *
 * - `client_encoding`, however it is set (SET, SET NAMES, set_config from
 *   SQL or PL/pgSQL, a function's SET clause, ALTER ROLE/DATABASE … SET):
 *   its check hook, found with the exported `find_option`, is wrapped by
 *   one that refuses anything but UTF8 and SQL_ASCII (0A000);
 * - `convert(bytea, name, name)`, `convert_from(bytea, name)` and
 *   `convert_to(text, name)`: their builtin slots in the function table
 *   (backends.ts's technique) check the encoding names and then run
 *   PostgreSQL's own function, which for UTF8 and SQL_ASCII converts
 *   nothing;
 * - `COPY … (ENCODING 'x')` is refused by the COPY guard in guard.ts.
 *
 * The startup packet's client_encoding is refused earlier, by
 * settings.ts's unsupportedClientEncoding, with the same words.
 */

import { wrapBuiltin } from "./backends.ts";
import { wrapCheckHook } from "./guard.ts";
import type { WasmTools } from "./wasmtools.ts";
import { needsNoConversion, unsupportedClientEncoding } from "./settings.ts";

/** Builtin function OIDs (pg_proc.dat) and the arguments that name an encoding. */
const CONVERSIONS: ReadonlyArray<[oid: number, name: string, encodingArgs: number[]]> = [
  [1813, "pg_convert", [1, 2]],
  [1714, "pg_convert_from", [1]],
  [1717, "pg_convert_to", [1]],
];

/** Offsets in wasm32 structures (fmgr.h): FunctionCallInfoBaseData.args, NullableDatum. */
const FCINFO_ARGS = 20;
const NULLABLE_DATUM_SIZE = 8;

export function installEncodingGuard(tools: WasmTools): void {
  wrapCheckHook(tools, "client_encoding", (value) => {
    const refused = unsupportedClientEncoding(value);
    if (refused !== null) {
      tools.raise(refused.code, refused.message, refused.detail, {
        ...(refused.hint !== undefined ? { hint: refused.hint } : {}),
      });
    }
  });

  const ex = tools.ex as unknown as typeof tools.ex & { get_func_name(oid: number): number };
  for (const [oid, cName, encodingArgs] of CONVERSIONS) {
    const p = ex.get_func_name(oid);
    const sqlName = p === 0 ? "" : tools.readCString(p);
    if (!cName.endsWith(sqlName) || sqlName === "") {
      throw new Error(`PGlite's builtin ${oid} is not ${cName}`);
    }
    wrapBuiltin(tools, oid, (fcinfo, original) => {
      const v = tools.view();
      for (const n of encodingArgs) {
        const at = fcinfo + FCINFO_ARGS + n * NULLABLE_DATUM_SIZE;
        // A NULL argument makes the (strict) function return NULL unseen.
        if (v.getUint8(at + 4) !== 0) continue;
        const name = tools.readCString(v.getUint32(at, true));
        if (!needsNoConversion(name)) {
          tools.raise(
            "0A000",
            `conversion to or from encoding "${name}" is not supported by the embedded engine`,
            "Conversion between encodings is not supported.",
            { hint: "PGlite converts no encodings: only UTF8 and SQL_ASCII can be named." },
          );
        }
      }
      return original(fcinfo);
    });
  }
}
