/** An in-memory ConfigReader for GUC tests: paths map to file texts. */

import type { ConfigReader } from "../../../src/core/guc/parser.ts";

export function memoryReader(files: Record<string, string>): ConfigReader {
  return {
    readFile: (path) => files[path] ?? null,
    readDir: (path) => {
      const prefix = `${path.replace(/\/+$/, "")}/`;
      const names = Object.keys(files)
        .filter((p) => p.startsWith(prefix) && !p.slice(prefix.length).includes("/"))
        .map((p) => p.slice(prefix.length));
      return names.length === 0 ? null : names;
    },
  };
}
