/**
 * Where the engine's file tree shows a data directory (backupfs.ts's
 * mountDataDirectory): at /pgts always, and at its own host path, which
 * SHOW data_directory and pg_settings then name, wherever that path does
 * not fall in the engine's own tree. A data directory below /dev/shm (a
 * RAM file system, where throwaway clusters go) is shown at its own path:
 * Emscripten's /dev/shm holds only empty directories of its own.
 */

import { describe, expect, test } from "bun:test";
import { DATADIR_MOUNT, mountDataDirectory } from "../../../src/engines/pglite/backupfs.ts";

/** An Emscripten FS that records what is mounted where. */
function recordingFs() {
  const mounts: { root: string; at: string }[] = [];
  return {
    mounts,
    fs: {
      mkdirTree(_path: string): void {},
      mount(_type: unknown, options: { root: string }, mountpoint: string): unknown {
        mounts.push({ root: options.root, at: mountpoint });
        return null;
      },
    },
  };
}

describe("mountDataDirectory", () => {
  const cases: [string, string | null][] = [
    ["/srv/pg/d", "/srv/pg/d"],
    ["/dev/shm/pgts-tests.x/pgts-e2e-y/d", "/dev/shm/pgts-tests.x/pgts-e2e-y/d"],
    ["/dev/shm/d", "/dev/shm/d"],
    // The engine's own directories keep their paths: reached at /pgts only.
    ["/dev/shm/tmp", null],
    ["/dev/d", null],
    ["/pglite/d", null],
    ["/tmp/pglite/d", null],
  ];
  for (const [dataDir, shown] of cases) {
    test(`${dataDir} is shown at ${shown ?? DATADIR_MOUNT + " only"}`, () => {
      const { fs, mounts } = recordingFs();
      expect(mountDataDirectory(fs, {}, `${dataDir}/pglite`)).toBe(shown);
      expect(mounts).toEqual([
        { root: dataDir, at: DATADIR_MOUNT },
        ...(shown === null ? [] : [{ root: dataDir, at: shown }]),
      ]);
    });
  }
});
