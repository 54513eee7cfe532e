/**
 * Which function each child of a pgts server runs: the main column of
 * PostgreSQL's `child_process_kinds[]` (launch_backend.c), in one table for
 * `pgts start` (every adapter), `serve-http` and the compiled binary.
 *
 * The postmaster names a child's main by a `ChildEntry` (module URL and
 * export), which a child in another process imports. Where the main is one
 * of these, `resolveMain` returns it from the table instead: an in-process
 * child then costs no `import()` per connection, an edge bundle needs no
 * dynamic import, and inside a compiled binary, where every module shares
 * the binary's own `import.meta.url` and no source file exists to import,
 * the export's name is what picks it. Anything else (a
 * shared_preload_libraries module on disk) is imported by its URL.
 */

import { importMain } from "../adapters/child/childenv.ts";
import { TRIVIAL_STARTUP_ENTRY, trivialStartupMain } from "../core/postmaster/auxmains.ts";
import { BGWORKER_MAIN_ENTRY } from "../core/postmaster/auxmains.ts";
import { backgroundWorkerMain } from "../core/postmaster/bgworker_main.ts";
import type { ChildEntry, ChildMain } from "../core/adapter.ts";
import { archiverMain, backendMain, checkpointerMain, engineMain } from "./children.ts";

const CHILDREN = new URL("./children.ts", import.meta.url).href;
const SYSLOGGER = new URL("../adapters/node/syslogger.ts", import.meta.url).href;

/**
 * The log collector's main, loaded on first use: it writes files with
 * node:fs, which a server without a logging collector (or without a file
 * system) never needs.
 */
const SysLoggerMain: ChildMain = async (env) =>
  await (await import("../adapters/node/syslogger.ts")).SysLoggerMain(env);

/** Every built-in main, by export name, with the module the postmaster's entries name. */
const CHILD_MAINS: Readonly<Record<string, { readonly module: string; readonly main: ChildMain }>> =
  {
    backendMain: { module: CHILDREN, main: backendMain },
    engineMain: { module: CHILDREN, main: engineMain },
    checkpointerMain: { module: CHILDREN, main: checkpointerMain },
    archiverMain: { module: CHILDREN, main: archiverMain },
    trivialStartupMain: { module: TRIVIAL_STARTUP_ENTRY.module, main: trivialStartupMain },
    backgroundWorkerMain: { module: BGWORKER_MAIN_ENTRY.module, main: backgroundWorkerMain },
    SysLoggerMain: { module: SYSLOGGER, main: SysLoggerMain },
  };

/** The entry the postmaster is given for one of pgts's own mains. */
export function childEntry(
  name: "backendMain" | "engineMain" | "checkpointerMain" | "archiverMain",
): ChildEntry {
  return { module: CHILDREN, export: name };
}

/** True for a module URL inside a compiled Bun binary. */
function isBundled(module: string): boolean {
  return module.startsWith("file:///$bunfs/") || module.startsWith("file:///B:/~BUN/");
}

/** The main an entry names: from the table when it is pgts's own, else imported. */
export function resolveMain(entry: ChildEntry): Promise<ChildMain> {
  const known = Object.hasOwn(CHILD_MAINS, entry.export) ? CHILD_MAINS[entry.export] : undefined;
  if (known !== undefined && (known.module === entry.module || isBundled(entry.module))) {
    return Promise.resolve(known.main);
  }
  return importMain(entry);
}
