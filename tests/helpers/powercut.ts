/**
 * A simulated power cut for a pgts data directory: the LD_PRELOAD shim in
 * tests/fixtures/powercut/powercut.c, built here with the machine's cc, keeps
 * beside the directory a shadow copy holding only what was fsynced (see the
 * shim's banner for the exact model). `PowerCut.arm()` copies the directory
 * as the state on disk at the start and returns the environment a server is
 * started with; after the server's processes are all SIGKILLed, the shadow is
 * the directory as a disk that lost every unsynced write would hold it.
 *
 * Needs Linux (/proc/self/fd) and a C compiler; `powerCutShim()` returns null
 * without them.
 */

import { spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const SOURCE = join(import.meta.dir, "..", "fixtures", "powercut", "powercut.c");

/** The built shim (one per source version, kept in the temporary directory), or null without cc. */
export function powerCutShim(): string | null {
  if (process.platform !== "linux") return null;
  const text = readFileSync(SOURCE);
  const hash = Bun.hash(text).toString(16);
  const out = join(tmpdir(), `pgts-powercut-${hash}.so`);
  if (existsSync(out)) return out;
  const cc = spawnSync("cc", [
    "-shared",
    "-fPIC",
    "-O2",
    "-pthread",
    "-o",
    `${out}.${process.pid}`,
    SOURCE,
    "-ldl",
  ], {
    encoding: "utf8",
  });
  if (cc.status !== 0) return null;
  renameSync(`${out}.${process.pid}`, out);
  return out;
}

export class PowerCut {
  readonly dataDir: string;
  /** The shadow data directory: what survives the cut. */
  readonly shadowDir: string;
  readonly #shim: string;
  readonly #count: string;
  readonly #fail: string;

  /** `shadowDir` must not exist; its parent must. */
  constructor(shim: string, dataDir: string, shadowDir: string) {
    this.#shim = shim;
    this.dataDir = realpathSync(dataDir);
    this.shadowDir = shadowDir;
    this.#count = `${shadowDir}.fsyncs`;
    this.#fail = `${shadowDir}.fail`;
  }

  /**
   * Takes the starting state and returns the server's environment. Each
   * fsync takes `syncDelayMs` (default 3) before what it syncs is kept: a
   * commit acknowledged before its fsync returned is lost at a cut.
   */
  arm(options: { syncDelayMs?: number } = {}): Record<string, string> {
    mkdirSync(join(this.shadowDir, ".."), { recursive: true });
    cpSync(this.dataDir, this.shadowDir, { recursive: true });
    return {
      LD_PRELOAD: this.#shim,
      POWERCUT_SRC: this.dataDir,
      POWERCUT_SHADOW: this.shadowDir,
      POWERCUT_COUNT: this.#count,
      POWERCUT_FAIL: this.#fail,
      POWERCUT_DELAY_US: String(Math.round((options.syncDelayMs ?? 3) * 1000)),
    };
  }

  /** File fsyncs and fdatasyncs under the data directory so far. */
  fsyncs(): number {
    try {
      return statSync(this.#count).size;
    } catch {
      return 0;
    }
  }

  /** While on, every fsync of a file under the data directory fails with EIO. */
  failFsyncs(on: boolean): void {
    if (on) writeFileSync(this.#fail, "");
    else rmSync(this.#fail, { force: true });
  }
}
