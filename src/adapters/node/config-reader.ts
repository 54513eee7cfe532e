/**
 * The node:fs ConfigReader for src/core/guc: reads postgresql.conf and its
 * includes for Bun and Deno alike. Missing files read as null, as the
 * parser's include_if_exists needs; other failures throw with the system's
 * error text.
 */

import { readdirSync, readFileSync } from "node:fs";
import type { ConfigReader } from "../../core/guc/parser.ts";
import { errorCode, strerror } from "./fs-errors.ts";

export const nodeConfigReader: ConfigReader = {
  readFile(path: string): string | null {
    try {
      return readFileSync(path, "utf8");
    } catch (e) {
      if (errorCode(e) === "ENOENT") return null;
      throw new Error(strerror(e));
    }
  },
  readDir(path: string): string[] | null {
    try {
      return readdirSync(path, { withFileTypes: true })
        .filter((d) => d.isFile() || d.isSymbolicLink())
        .map((d) => d.name);
    } catch (e) {
      if (errorCode(e) === "ENOENT") return null;
      throw new Error(strerror(e));
    }
  },
};
