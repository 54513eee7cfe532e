/**
 * Archive recovery inside PGlite: the shell commands Postgres runs during
 * recovery (restore_command, archive_cleanup_command, recovery_end_command).
 *
 * Postgres runs them with system(3). PGlite replaces system() with a stub
 * that runs nothing and returns 1, which Postgres reads as a wait status
 * "terminated by signal 1", so any archive recovery on stock PGlite ends at
 * its first restore_command with FATAL `could not restore file
 * "00000002.history" from archive: child process was terminated by signal 1:
 * Hangup`. For a cluster on disk this module puts a real system() in its
 * place: the command runs through /bin/sh in the cluster's host directory,
 * synchronously on the engine's thread (Postgres waits for it anyway), and
 * its wait status goes back to Postgres. The cluster's directory is the
 * backend's working directory inside WASM too (NODEFS mounts it there), so
 * `%p` (`pg_wal/RECOVERYXLOG`) names the same file on both sides.
 *
 * Only the postmaster's settings reach these commands (restore_command is
 * PGC_SIGHUP in PostgreSQL; a session cannot SET it); COPY … PROGRAM goes
 * through popen, which guard.ts refuses, not through here.
 */

import { spawnSync } from "node:child_process";
import { existsSync, renameSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { ENGINE_DIR } from "../../core/datadir.ts";

/** The recovery settings pgts passes to the engine, PostgreSQL's names. */
export const RECOVERY_SETTINGS = [
  "restore_command",
  "archive_cleanup_command",
  "recovery_end_command",
  "recovery_target",
  "recovery_target_name",
  "recovery_target_time",
  "recovery_target_xid",
  "recovery_target_lsn",
  "recovery_target_inclusive",
  "recovery_target_timeline",
  "recovery_target_action",
] as const;

/** The Emscripten module's parts the replacement needs. */
interface EmscriptenModule {
  addFunction(fn: (...args: never[]) => unknown, signature: string): number;
  UTF8ToString(ptr: number): string;
  [name: string]: unknown;
}

/**
 * Makes PGlite's `system()` run its command for real in `cwd` (the host
 * path of the cluster). Called from PGlite's preRun, before PGlite installs
 * its stub: the setter is wrapped so that whatever PGlite passes, ours is
 * what Postgres gets.
 */
export function installShellCommands(module: EmscriptenModule, cwd: string): void {
  const set = module["_pgl_set_system_fn"];
  if (typeof set !== "function") return;
  const system = (ptr: number): number => {
    if (ptr === 0) return 1; // system(NULL): a shell is available
    return runShell(module.UTF8ToString(ptr), cwd);
  };
  const ours = module.addFunction(system as (...args: never[]) => unknown, "pi");
  module["_pgl_set_system_fn"] = () => (set as (fn: number) => void)(ours);
}

/**
 * A line Postgres wrote to stderr while the engine opens for an archive
 * recovery, passed on to the server log (PGlite drops them otherwise).
 * Returns false: PGlite's own handling goes on.
 */
export function recoveryLog(line: string, opened: () => boolean): boolean {
  if (!opened()) process.stderr.write(`${line}\n`);
  return false;
}

/** Runs `command` with /bin/sh in `cwd`; a wait status as system(3) returns it. */
export function runShell(command: string, cwd: string): number {
  const r = spawnSync("/bin/sh", ["-c", command], { cwd, stdio: ["ignore", "inherit", "inherit"] });
  if (r.error !== undefined) return 127 << 8;
  if (r.status !== null) return (r.status & 0xff) << 8;
  return signalNumber(r.signal);
}

const SIGNALS: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGABRT: 6,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGTERM: 15,
};

function signalNumber(name: string | null): number {
  return (name !== null ? SIGNALS[name] : undefined) ?? SIGNALS["SIGTERM"]!;
}

/**
 * PostgreSQL's recovery.signal in pgts's data directory (`DIR/recovery.signal`,
 * where a user of PostgreSQL puts it) is moved into the engine's cluster,
 * where Postgres looks for it and removes it when recovery ends. Returns
 * whether archive recovery was requested.
 */
export function takeRecoverySignal(dataDir: string): boolean {
  const clusterDir = join(dataDir, ENGINE_DIR);
  for (const name of ["recovery.signal", "standby.signal"]) {
    const outer = join(dataDir, name);
    if (existsSync(outer)) renameSync(outer, join(clusterDir, name));
  }
  return existsSync(join(clusterDir, "recovery.signal")) ||
    existsSync(join(clusterDir, "standby.signal"));
}

/**
 * The engine's settings for an archive recovery: the recovery settings that
 * are set, and `hot_standby = off`. A single-user backend cannot be a hot
 * standby (Postgres stops with FATAL `sinval slot for backend 0 is already
 * in use` when it tries), and without it PostgreSQL turns
 * `recovery_target_action = pause` into `shutdown`, as here.
 */
export function recoverySettings(
  value: (name: (typeof RECOVERY_SETTINGS)[number]) => string,
): Record<string, string> {
  const settings: Record<string, string> = { hot_standby: "off" };
  for (const name of RECOVERY_SETTINGS) {
    const v = value(name);
    if (v !== "") settings[name] = v;
  }
  return settings;
}
