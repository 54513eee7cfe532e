/**
 * The client_encoding guard. pgts converts encodings itself
 * (conversions.ts), all but EUC_TW, EUC_JIS_2004, SHIFT_JIS_2004, JOHAB and
 * MULE_INTERNAL. A client_encoding naming one of those is refused however
 * it is set (SET, SET NAMES, set_config from SQL or PL/pgSQL, a function's
 * SET clause, ALTER ROLE/DATABASE … SET): the parameter's check hook,
 * found with the exported `find_option`, is wrapped by one that refuses it
 * (0A000), as PostgreSQL refuses an encoding it has no conversion for.
 * Accepted, every message to and from the client would fail to convert.
 * (convert(), convert_from(), convert_to() and COPY … ENCODING naming one
 * are refused by the conversion itself.)
 *
 * The startup packet's client_encoding is refused earlier, by
 * settings.ts's unsupportedClientEncoding, with the same words.
 */

import { wrapCheckHook } from "./guard.ts";
import type { WasmTools } from "./wasmtools.ts";
import { unsupportedClientEncoding } from "./settings.ts";

export function installEncodingGuard(tools: WasmTools): void {
  wrapCheckHook(tools, "client_encoding", (value) => {
    const refused = unsupportedClientEncoding(value);
    if (refused !== null) {
      tools.raise(refused.code, refused.message, refused.detail, {
        ...(refused.hint !== undefined ? { hint: refused.hint } : {}),
      });
    }
  });
}
