/**
 * The child mains built into a compiled `pgts` binary, for its children's
 * `resolveMain`. In a bundle every module shares one `import.meta.url` (the
 * binary's own, under /$bunfs), so an entry's `module` no longer names a file
 * that `import()` can load; the entry's export name picks the main instead.
 * Entries outside the bundle (shared_preload_libraries modules on disk) are
 * imported as usual.
 */

import { importMain } from "../adapters/shared/childenv.ts";
import { SysLoggerMain } from "../adapters/shared/syslogger.ts";
import { trivialStartupMain } from "../core/postmaster/auxmains.ts";
import { backgroundWorkerMain } from "../core/postmaster/bgworker_main.ts";
import type { ChildEntry, ChildMain } from "../core/postmaster/launch.ts";
import { archiverMain, backendMain, checkpointerMain, engineMain } from "../server/children.ts";

const BUILT_IN: Readonly<Record<string, ChildMain>> = {
  backendMain,
  engineMain,
  checkpointerMain,
  archiverMain,
  trivialStartupMain,
  backgroundWorkerMain,
  SysLoggerMain,
};

/** True for a module URL inside a compiled Bun binary. */
function isBundled(module: string): boolean {
  return module.startsWith("file:///$bunfs/") || module.startsWith("file:///B:/~BUN/");
}

export function resolveBundledMain(entry: ChildEntry): Promise<ChildMain> {
  const main = isBundled(entry.module) ? BUILT_IN[entry.export] : undefined;
  if (main !== undefined) return Promise.resolve(main);
  return importMain(entry);
}
