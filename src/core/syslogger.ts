/**
 * The log collector, pgts's syslogger.c: a child that owns the log files.
 * With logging_collector = on, every process formats its own lines (see
 * log.ts) and sends them here; the collector appends them to the current file
 * in log_directory, named by log_filename's strftime escapes, and starts a new
 * file when log_rotation_age has passed (aligned to the local clock, as
 * PostgreSQL does), when the file reaches log_rotation_size, or on SIGUSR1.
 * It records the current file in $PGDATA/current_logfiles.
 *
 * Message format (structured-cloneable, `SysLoggerMessage`):
 *   - a child sends `{type: "log", line}` with `env.post`, where `line` is one
 *     formatted message (one or more "\n"-terminated lines); the postmaster
 *     forwards every such message unchanged to the collector's `post`, and
 *     sends its own lines the same way (`collectorSink` builds that sink);
 *   - `{type: "settings", settings}` after a reload (a `Guc.snapshot()`): new
 *     log_directory/log_filename/rotation settings apply at once, and a new
 *     directory or file name starts a new file, as in PostgreSQL;
 *   - `{type: "rotate"}` is the same as SIGUSR1;
 *   - `{type: "shutdown"}` is the postmaster's last message (PostgreSQL's
 *     syslogger exits when the pipe's last writer is gone): the collector
 *     closes its file and returns 0.
 * Like PostgreSQL's syslogger it ignores SIGTERM, SIGINT and SIGQUIT, so that
 * messages written during shutdown still reach the file; the abort signal
 * (SIGKILL, postmaster death) ends it.
 *
 * Files are written through the injected LogFileSystem; the node:fs one and
 * the `ChildMain` entry are in src/adapters/node/syslogger.ts.
 */

import { ereport } from "./elog.ts";
import { Guc, type GucSnapshot } from "./guc/guc.ts";
import { configureLogging, type LineSink, zonedTime } from "./log.ts";
import type { ChildEnv } from "./adapter.ts";

export type SysLoggerMessage =
  | { readonly type: "log"; readonly line: string }
  | { readonly type: "settings"; readonly settings: GucSnapshot }
  | { readonly type: "rotate" }
  | { readonly type: "shutdown" };

export function isSysLoggerMessage(m: unknown): m is SysLoggerMessage {
  const type = (m as { type?: unknown } | null)?.type;
  return type === "log" || type === "settings" || type === "rotate" || type === "shutdown";
}

/** A sink that sends lines to the collector: children pass `env.post`. */
export function collectorSink(post: (message: SysLoggerMessage) => void): LineSink {
  return (line) => post({ type: "log", line });
}

/** Start parameters of the collector child. */
export interface SysLoggerParams {
  readonly settings: GucSnapshot;
  readonly dataDir: string;
}

/** An open log file, appending. */
export interface LogFile {
  /** Bytes in the file, including what was there before it was opened. */
  readonly size: number;
  write(text: string): void;
  close(): void;
}

/** What the collector needs of a file system. */
export interface LogFileSystem {
  /** Creates a directory and its parents, mode 0700; no error if it exists. */
  mkdir(path: string): void;
  /** Opens for appending (creating with mode 0600), or truncates first. */
  open(path: string, options: { truncate: boolean }): LogFile;
  /** Replaces a small file atomically (write a temporary file, rename). */
  replaceFile(path: string, text: string): void;
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");
const dayNames = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const monthNames = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

/** strftime as PostgreSQL's pg_strftime applies it to log_filename. */
export function strftime(pattern: string, epochMs: number, timeZone: string): string {
  const t = zonedTime(epochMs, timeZone);
  const startOfYear = Date.UTC(t.year, 0, 1);
  const yday = Math.floor((Date.UTC(t.year, t.month - 1, t.day) - startOfYear) / 86_400_000) + 1;
  const off = Math.abs(t.offset);
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c !== "%" || i + 1 >= pattern.length) {
      out += c;
      continue;
    }
    const e = pattern[++i]!;
    const h12 = t.hour % 12 === 0 ? 12 : t.hour % 12;
    const map: Record<string, string> = {
      Y: String(t.year),
      y: pad(t.year % 100),
      C: pad(Math.floor(t.year / 100)),
      m: pad(t.month),
      d: pad(t.day),
      e: String(t.day).padStart(2, " "),
      H: pad(t.hour),
      I: pad(h12),
      M: pad(t.minute),
      S: pad(t.second),
      j: pad(yday, 3),
      a: dayNames[t.weekday]!.slice(0, 3),
      A: dayNames[t.weekday]!,
      b: monthNames[t.month - 1]!.slice(0, 3),
      h: monthNames[t.month - 1]!.slice(0, 3),
      B: monthNames[t.month - 1]!,
      p: t.hour < 12 ? "AM" : "PM",
      u: String(t.weekday === 0 ? 7 : t.weekday),
      w: String(t.weekday),
      s: String(Math.floor(epochMs / 1000)),
      Z: t.zone,
      z: `${t.offset < 0 ? "-" : "+"}${pad(Math.floor(off / 3600))}${
        pad(Math.floor(off / 60) % 60)
      }`,
      F: `${t.year}-${pad(t.month)}-${pad(t.day)}`,
      T: `${pad(t.hour)}:${pad(t.minute)}:${pad(t.second)}`,
      n: "\n",
      t: "\t",
      "%": "%",
    };
    out += map[e] ?? `%${e}`;
  }
  return out;
}

export interface SysLoggerOptions {
  readonly dataDir: string;
  /** The clock, ms since the epoch; tests pass a fake one. */
  readonly now?: () => number;
}

/** The collector's state: the open file and when to rotate next. */
export class SysLogger {
  #files: LogFileSystem;
  #settings: Guc;
  #dataDir: string;
  #now: () => number;
  #file: LogFile | null = null;
  #fileName = "";
  #directory = "";
  #pattern = "";
  #nextRotation = Infinity;

  constructor(files: LogFileSystem, settings: Guc, options: SysLoggerOptions) {
    this.#files = files;
    this.#settings = settings;
    this.#dataDir = options.dataDir;
    this.#now = options.now ?? Date.now;
  }

  /** Path of the file being written, or "" before `open`. */
  get currentFile(): string {
    return this.#fileName;
  }

  get settings(): Guc {
    return this.#settings;
  }

  #logDirectory(): string {
    const dir = this.#settings.getString("log_directory");
    return dir.startsWith("/") ? dir : `${this.#dataDir}/${dir}`;
  }

  #pathFor(epochMs: number): string {
    const name = strftime(
      this.#settings.getString("log_filename"),
      epochMs,
      this.#settings.getString("log_timezone"),
    );
    return `${this.#logDirectory()}/${name}`;
  }

  /** PostgreSQL's set_next_rotation_time: the next multiple of the age in local time. */
  #scheduleRotation(): void {
    const ageMin = this.#settings.getInt("log_rotation_age");
    if (ageMin <= 0) {
      this.#nextRotation = Infinity;
      return;
    }
    const interval = ageMin * 60;
    const nowS = Math.floor(this.#now() / 1000);
    const offset = zonedTime(this.#now(), this.#settings.getString("log_timezone")).offset;
    const local = nowS + offset;
    this.#nextRotation = (local - (local % interval) + interval - offset) * 1000;
  }

  /** Opens the first file. */
  open(): void {
    this.#rotate(this.#now(), false);
  }

  #rotate(fileTime: number, timeBased: boolean): void {
    const path = this.#pathFor(fileTime);
    this.#directory = this.#logDirectory();
    this.#pattern = this.#settings.getString("log_filename");
    this.#files.mkdir(this.#directory);
    // Truncation only for time-based rotation onto a different name, so that
    // a restart or a size rotation never loses what a file already holds.
    const truncate = timeBased && this.#settings.getBool("log_truncate_on_rotation") &&
      this.#fileName !== "" && path !== this.#fileName;
    const next = this.#files.open(path, { truncate });
    this.#file?.close();
    this.#file = next;
    this.#fileName = path;
    this.#scheduleRotation();
    const logDir = this.#settings.getString("log_directory");
    const shown = logDir.startsWith("/") ? path : path.slice(this.#dataDir.length + 1);
    this.#files.replaceFile(`${this.#dataDir}/current_logfiles`, `stderr ${shown}\n`);
  }

  /** Starts a new file now (SIGUSR1, pg_rotate_logfile). */
  rotate(): void {
    this.#rotate(this.#now(), false);
  }

  /** Appends one message, then rotates if the file reached log_rotation_size. */
  write(text: string): void {
    if (this.#file === null) this.open();
    this.#file!.write(text);
    const limitKb = this.#settings.getInt("log_rotation_size");
    if (limitKb > 0 && this.#file!.size >= limitKb * 1024) this.#rotate(this.#now(), false);
  }

  /** Rotates when log_rotation_age has passed; call it on a timer. */
  tick(): void {
    const now = this.#now();
    if (now >= this.#nextRotation) this.#rotate(this.#nextRotation, true);
  }

  /** Milliseconds until the next age rotation (Infinity when disabled). */
  get msUntilRotation(): number {
    return Math.max(0, this.#nextRotation - this.#now());
  }

  /** Applies reloaded settings; a new directory or file name starts a new file. */
  applySettings(settings: Guc): void {
    this.#settings = settings;
    if (this.#file === null) return;
    if (
      this.#logDirectory() !== this.#directory ||
      settings.getString("log_filename") !== this.#pattern
    ) {
      this.#rotate(this.#now(), false);
    } else this.#scheduleRotation();
  }

  close(): void {
    this.#file?.close();
    this.#file = null;
  }
}

/**
 * The collector's main loop: handles messages and signals until shutdown.
 * The ChildMain in src/adapters/node/syslogger.ts calls it with node:fs files.
 */
export function sysLoggerMain(
  env: ChildEnv,
  options: { files: LogFileSystem; now?: () => number },
): Promise<number> {
  const params = env.params as SysLoggerParams;
  const settings = Guc.fromSnapshot(params.settings);
  const logger = new SysLogger(options.files, settings, {
    dataDir: params.dataDir,
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  logger.open();
  // The collector's own messages go straight into its file.
  configureLogging(settings, {
    sink: (line) => logger.write(line),
    process: { pid: env.pid, backendType: "logger", startTime: Date.now() },
  });
  return new Promise((resolve) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      if (timer !== undefined) clearTimeout(timer);
      // Timers cannot wait longer than ~24.8 days; re-arm in steps.
      const wait = Math.min(logger.msUntilRotation, 3_600_000);
      timer = setTimeout(() => {
        logger.tick();
        arm();
      }, wait);
    };
    const finish = () => {
      if (timer !== undefined) clearTimeout(timer);
      logger.close();
      resolve(0);
    };
    env.onSignal("SIGUSR1", () => {
      logger.rotate();
      arm();
    });
    env.onSignal("SIGHUP", () => {/* settings arrive as a "settings" message */});
    for (const sig of ["SIGTERM", "SIGINT", "SIGQUIT"] as const) env.onSignal(sig, () => {});
    env.abort.addEventListener("abort", finish, { once: true });
    env.onMessage = (m: unknown) => {
      if (!isSysLoggerMessage(m)) return;
      switch (m.type) {
        case "log":
          logger.write(m.line);
          break;
        case "settings": {
          const next = Guc.fromSnapshot(m.settings);
          logger.applySettings(next);
          configureLogging(next, {
            sink: (line) => logger.write(line),
            process: { pid: env.pid, backendType: "logger", startTime: Date.now() },
          });
          arm();
          break;
        }
        case "rotate":
          logger.rotate();
          arm();
          break;
        case "shutdown":
          finish();
          break;
        default: {
          const never: never = m;
          ereport("LOG", `unexpected message to the logger: ${JSON.stringify(never)}`);
        }
      }
    };
    arm();
  });
}
