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
 *
 * Every database is a PGlite cluster with a WAL of its own, whose segment
 * names collide with the others'. In the archive, "postgres"'s files keep
 * their names and those of `DIR/base/<oid>` are named `base_<oid>_<name>`
 * (`archivePrefix`): the archiver passes that as `%f`, and a database's
 * restore_command gets `%f` with the same prefix (`prefixFileName`), so any
 * command that treats `%f` as a file name keeps them apart.
 *
 * Point-in-time recovery of every database: one recovery.signal in the
 * data directory asks for all of them (`takeRecoverySignal` puts one in
 * each database's cluster). "postgres" recovers first, to the target given;
 * each other database then recovers, when its engine first opens, to the
 * time at which "postgres" stopped (`otherDatabasesTarget`): the databases
 * share no WAL, xid or LSN, so a restore point, an xid or an LSN names a
 * moment only in the WAL where it is, and a time is what they have in
 * common. Postgres's own lines tell that time (`recovery stopping … time
 * T`, or `last completed transaction was at log time T` for an LSN):
 * `recoveryLog` keeps them in the cluster's `pgts_recovery_result`, and the
 * target is written into each other database's recovery.signal, which
 * Postgres removes when that database's recovery ends. A database whose WAL
 * ends before that time (nothing committed there since) makes Postgres stop
 * with `recovery ended before configured recovery target was reached`; all
 * of its WAL is then before the target, and it is recovered again to the
 * end of its archive.
 */

import { spawnSync } from "node:child_process";
import {
  appendFileSync,
  existsSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
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
export function recoveryLog(line: string, opened: () => boolean, clusterDir: string): boolean {
  if (!opened()) {
    process.stderr.write(`${line}\n`);
    const fact = RESULT_LINES.map(([kind, re]) => [kind, re.exec(line)?.[1]] as const)
      .find(([, v]) => v !== undefined);
    if (fact !== undefined) {
      appendFileSync(join(clusterDir, RECOVERY_RESULT), `${fact[0]} ${fact[1]}\n`);
    }
  }
  return false;
}

/** What a recovery's end said, kept in the cluster by recoveryLog. */
const RECOVERY_RESULT = "pgts_recovery_result";
const RESULT_LINES: readonly (readonly [string, RegExp])[] = [
  ["stop", /recovery stopping .*, time (.+)$/],
  ["last", /last completed transaction was at log time (.+)$/],
  ["unreached", /(recovery ended before configured recovery target was reached)/],
];

/** The facts recoveryLog kept for `clusterDir` (and forgets them). */
function takeRecoveryResult(clusterDir: string): Map<string, string> {
  const file = join(clusterDir, RECOVERY_RESULT);
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    // Nothing was said.
  }
  rmSync(file, { force: true });
  const facts = new Map<string, string>();
  for (const line of text.split("\n")) {
    const space = line.indexOf(" ");
    if (space > 0) facts.set(line.slice(0, space), line.slice(space + 1));
  }
  return facts;
}

/** The prefix of a database's WAL file names in the archive (none for "postgres"'s DIR/pglite). */
export function archivePrefix(clusterDir: string): string {
  const m = /(?:^|\/)base\/(\d+)\/?$/.exec(clusterDir);
  return m === null ? "" : `base_${m[1]}_`;
}

/** `command` with `%f` standing for `prefix` followed by the file name; `%%` kept. */
export function prefixFileName(command: string, prefix: string): string {
  if (prefix === "") return command;
  return command.replace(/%[%f]/g, (m) => m === "%f" ? `${prefix}%f` : m);
}

/** template0's cluster: no session ever writes it, so it has nothing to recover. */
const TEMPLATE0_DIR = "base/4";

/** The clusters of the data directory's databases other than "postgres" (DIR/base/<oid>). */
export function otherDatabaseClusters(dataDir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(join(dataDir, "base"));
  } catch {
    return [];
  }
  return names.filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(a) - Number(b))
    .map((n) => `base/${n}`);
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
  const outer = join(dataDir, "recovery.signal");
  if (existsSync(outer)) {
    // Every database recovers (the others to "postgres"'s stop, see above).
    for (const dir of otherDatabaseClusters(dataDir)) {
      if (dir !== TEMPLATE0_DIR) writeFileSync(join(dataDir, dir, "recovery.signal"), "");
    }
    renameSync(outer, join(clusterDir, "recovery.signal"));
  }
  const standby = join(dataDir, "standby.signal");
  if (existsSync(standby)) renameSync(standby, join(clusterDir, "standby.signal"));
  return [ENGINE_DIR, ...otherDatabaseClusters(dataDir)].some((dir) =>
    existsSync(join(dataDir, dir, "recovery.signal"))
  ) || existsSync(join(clusterDir, "standby.signal"));
}

/**
 * After "postgres" recovered (its engine opened with `settings`): the
 * target of every other database still to recover, written into its
 * recovery.signal. A time target is everyone's as given; `immediate` is
 * each database's own consistent point; none is the end of each archive;
 * a name, xid or LSN becomes the time at which "postgres" stopped.
 */
export function otherDatabasesTarget(
  dataDir: string,
  settings: Readonly<Record<string, string>>,
): void {
  const facts = takeRecoveryResult(join(dataDir, ENGINE_DIR));
  const pending = otherDatabaseClusters(dataDir).filter((dir) =>
    existsSync(join(dataDir, dir, "recovery.signal"))
  );
  // Written once, when "postgres" recovered: a restart leaves it as it is.
  if (facts.size === 0 && settings["recovery_target_time"] === undefined) return;
  let target: Record<string, string> = {};
  if (settings["recovery_target_time"] !== undefined) {
    target = { recovery_target_time: settings["recovery_target_time"] };
  } else if (settings["recovery_target"] === "immediate") {
    target = { recovery_target: "immediate" };
  } else if (
    settings["recovery_target_name"] !== undefined ||
    settings["recovery_target_xid"] !== undefined ||
    settings["recovery_target_lsn"] !== undefined
  ) {
    const time = facts.get("stop") ?? facts.get("last");
    if (time !== undefined) target = { recovery_target_time: time };
  }
  if (settings["recovery_target_inclusive"] !== undefined && "recovery_target_time" in target) {
    target["recovery_target_inclusive"] = settings["recovery_target_inclusive"];
  }
  for (const dir of pending) {
    writeFileSync(join(dataDir, dir, "recovery.signal"), JSON.stringify(target) + "\n");
  }
}

/**
 * The engine settings of database cluster `dir` (DIR/base/<oid>) when it
 * has a recovery.signal: the server's recovery settings, its
 * restore_command reading this database's files, and the target
 * "postgres"'s recovery left in the signal file; null when it has none.
 * `reached`: false after Postgres said its WAL ends before that target,
 * which then drops the target (see above).
 */
export function databaseRecoverySettings(
  dataDir: string,
  dir: string,
  options: { settings: Readonly<Record<string, string>>; unreached: boolean },
): Record<string, string> | null {
  const signal = join(dataDir, dir, "recovery.signal");
  if (!existsSync(signal)) return null;
  const restore = options.settings["restore_command"] ?? "";
  if (restore === "") return null;
  let target: Record<string, string> = {};
  try {
    target = JSON.parse(readFileSync(signal, "utf8") || "{}") as Record<string, string>;
  } catch {
    // An empty signal (or one a user wrote): the end of the archive.
  }
  if (options.unreached) {
    target = {};
    writeFileSync(signal, "{}\n");
  }
  const settings: Record<string, string> = { hot_standby: "off" };
  for (const name of RECOVERY_SETTINGS) {
    const v = options.settings[name];
    if (v !== undefined && v !== "" && !name.startsWith("recovery_target")) settings[name] = v;
  }
  settings["restore_command"] = prefixFileName(restore, archivePrefix(dir));
  const action = options.settings["recovery_target_action"];
  if (action !== undefined && action !== "") settings["recovery_target_action"] = action;
  return { ...settings, ...target };
}

/** Whether Postgres said, while `dir`'s engine opened, that its WAL ended before the target. */
export function recoveryUnreached(dataDir: string, dir: string): boolean {
  return takeRecoveryResult(join(dataDir, dir)).has("unreached");
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
