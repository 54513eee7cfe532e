/**
 * Reads the upstream engines' `auth_file` (src/engines/upstream/auth-file.ts)
 * with node:fs, at every lookup, so that an edit takes effect at the next
 * login without a reload; the text is parsed again only when it changed.
 * A file that cannot be read, or a line that cannot, is logged (never its
 * contents) and counts as absent.
 */

import { readFile } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { ereport } from "../../core/elog.ts";
import {
  type AuthFileEntry,
  type AuthFileLookup,
  parseAuthFile,
} from "../../engines/upstream/auth-file.ts";
import { strerror } from "./fs-errors.ts";

/** `setting()`: the auth_file parameter now (empty: none); relative paths are in `dataDir`. */
export function authFileReader(setting: () => string, dataDir: string): AuthFileLookup {
  let last: { text: string; entries: Map<string, AuthFileEntry> } | null = null;
  let failed: string | null = null;
  return async (user) => {
    const name = setting();
    if (name === "") return null;
    const path = isAbsolute(name) ? name : join(dataDir, name);
    let text: string;
    try {
      text = await readFile(path, "utf8");
      failed = null;
    } catch (e) {
      const why = strerror(e);
      // Once per failure, not at every login.
      if (failed !== why) {
        ereport("LOG", `could not open auth_file "${path}": ${why}`, { category: "auth" });
      }
      failed = why;
      return null;
    }
    if (last?.text !== text) {
      const { entries, badLines } = parseAuthFile(text);
      for (const line of badLines) {
        ereport("LOG", `invalid line ${line} of auth_file "${path}"`, {
          category: "auth",
          hint: 'A line is "user" "secret": a SCRAM-SHA-256 secret, md5 hash or password.',
        });
      }
      last = { text, entries };
    }
    return last.entries.get(user) ?? null;
  };
}
