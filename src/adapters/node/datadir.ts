/**
 * The node:fs DataDirectory that the Bun and Deno adapters share: the data
 * directory check (checkDataDir, ValidatePgVersion) and postmaster.pid
 * (CreateLockFile) with PostgreSQL's rules. The file is created with O_EXCL;
 * when it exists, the PID in it is probed with kill(pid, 0), and a file left
 * by a dead process (or by our own or our parent's PID, reused after a
 * reboot) is removed and the creation retried.
 */

import {
  closeSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { resolve } from "node:path";
import process from "node:process";
import {
  CLUSTER_FORMAT,
  type DataDirectory,
  type DataDirLock,
  formatLockFile,
  type LockFileContents,
  type LockFileUpdate,
  type LockRequest,
  NO_SHMEM_KEY,
  parseLockFile,
  PID_FILE,
  VERSION_FILE,
} from "../../core/datadir.ts";
import { ERRCODE, PgError } from "../../core/elog.ts";
import { errorCode, strerror } from "./fs-errors.ts";

const UNDEFINED_FILE = "58P01";
const IO_ERROR = "58030";
const MAX_LOCK_TRIES = 100;

function fatal(code: string, message: string, fields: { detail?: string; hint?: string } = {}) {
  return new PgError(code, message, { ...fields, severity: "FATAL" });
}

/**
 * Whether a process with this PID exists. As PostgreSQL does, EPERM counts as
 * gone: the data directory's mode means such a process is not our postmaster.
 */
export function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    const code = errorCode(e);
    return code !== "ESRCH" && code !== "EPERM";
  }
}

class NodeDataDirLock implements DataDirLock {
  readonly path: string;
  #contents: LockFileContents;
  #released = false;

  constructor(path: string, contents: LockFileContents) {
    this.path = path;
    this.#contents = contents;
  }

  get contents(): LockFileContents {
    return this.#contents;
  }

  update(fields: LockFileUpdate): void {
    if (this.#released) throw new TypeError("Lock file was already released");
    this.#contents = { ...this.#contents, ...fields };
    // Overwritten in place, as PostgreSQL's AddToDataDirLockFile does: a
    // truncating write would let a reader (pgts stop polling the file) find
    // it empty. The padded status keeps the length stable.
    const bytes = new TextEncoder().encode(formatLockFile(this.#contents));
    const fd = openSync(this.path, "r+");
    try {
      writeSync(fd, bytes, 0, bytes.length, 0);
      ftruncateSync(fd, bytes.length);
    } finally {
      closeSync(fd);
    }
  }

  recheck(): boolean {
    try {
      return parseLockFile(readFileSync(this.path, "utf8"))?.pid === this.#contents.pid;
    } catch {
      return false;
    }
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    if (!this.recheck()) return;
    try {
      unlinkSync(this.path);
    } catch {
      // Already gone: nothing to release.
    }
  }

  [Symbol.dispose](): void {
    this.release();
  }
}

export class NodeDataDirectory implements DataDirectory {
  readonly path: string;

  constructor(path: string) {
    this.path = resolve(path);
  }

  check(): void {
    let st;
    try {
      st = statSync(this.path);
    } catch (e) {
      if (errorCode(e) === "ENOENT") {
        throw fatal(UNDEFINED_FILE, `data directory "${this.path}" does not exist`);
      }
      throw fatal(
        IO_ERROR,
        `could not read permissions of directory "${this.path}": ${strerror(e)}`,
      );
    }
    if (!st.isDirectory()) {
      throw fatal(
        ERRCODE.OBJECT_NOT_IN_PREREQUISITE_STATE,
        `specified data directory "${this.path}" is not a directory`,
      );
    }
    const uid = typeof process.getuid === "function" ? process.getuid() : undefined;
    if (uid !== undefined && st.uid !== uid) {
      throw fatal(
        ERRCODE.OBJECT_NOT_IN_PREREQUISITE_STATE,
        `data directory "${this.path}" has wrong ownership`,
        { hint: "The server must be started by the user that owns the data directory." },
      );
    }
    if ((st.mode & 0o027) !== 0) {
      throw fatal(
        ERRCODE.OBJECT_NOT_IN_PREREQUISITE_STATE,
        `data directory "${this.path}" has invalid permissions`,
        { detail: "Permissions should be u=rwx (0700) or u=rwx,g=rx (0750)." },
      );
    }
    const versionPath = `${this.path}/${VERSION_FILE}`;
    let format: string;
    try {
      format = readFileSync(versionPath, "utf8").trim();
    } catch (e) {
      if (errorCode(e) === "ENOENT") {
        throw fatal(
          ERRCODE.OBJECT_NOT_IN_PREREQUISITE_STATE,
          `"${this.path}" is not a valid data directory`,
          { detail: `File "${versionPath}" is missing.` },
        );
      }
      throw fatal(IO_ERROR, `could not open file "${versionPath}": ${strerror(e)}`);
    }
    if (format !== CLUSTER_FORMAT) {
      throw fatal(
        ERRCODE.OBJECT_NOT_IN_PREREQUISITE_STATE,
        "database files are incompatible with server",
        {
          detail: `The data directory was initialized by pgts cluster format ${format}, ` +
            `which is not compatible with this version ${CLUSTER_FORMAT}.`,
        },
      );
    }
  }

  readLockFile(): LockFileContents | null {
    try {
      return parseLockFile(readFileSync(`${this.path}/${PID_FILE}`, "utf8"));
    } catch (e) {
      if (errorCode(e) === "ENOENT") return null;
      throw e;
    }
  }

  lock(request: LockRequest): DataDirLock {
    const path = `${this.path}/${PID_FILE}`;
    const contents: LockFileContents = {
      pid: request.pid,
      dataDir: this.path,
      startTime: request.startTime ?? Math.floor(Date.now() / 1000),
      port: request.port,
      socketDir: request.socketDir ?? "",
      listenAddress: request.listenAddress ?? "",
      shmemKey: NO_SHMEM_KEY,
      status: "starting",
    };
    for (let tries = 0;; tries++) {
      let fd: number;
      try {
        fd = openSync(path, "wx", 0o600);
      } catch (e) {
        if (errorCode(e) !== "EEXIST" || tries >= MAX_LOCK_TRIES) {
          throw fatal(IO_ERROR, `could not create lock file "${path}": ${strerror(e)}`);
        }
        this.#conflict(path, request.pid);
        continue;
      }
      try {
        writeSync(fd, formatLockFile(contents));
        fsyncSync(fd);
      } catch (e) {
        closeSync(fd);
        try {
          unlinkSync(path);
        } catch {
          // The write failure is what matters.
        }
        throw fatal(IO_ERROR, `could not write lock file "${path}": ${strerror(e)}`);
      }
      closeSync(fd);
      return new NodeDataDirLock(path, contents);
    }
  }

  /**
   * Looks at an existing lock file: throws when a live process holds it,
   * removes it when it is stale; the caller then retries the creation.
   */
  #conflict(path: string, myPid: number): void {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      // Removed between our open and read: try again.
      if (errorCode(e) === "ENOENT") return;
      throw fatal(IO_ERROR, `could not open lock file "${path}": ${strerror(e)}`);
    }
    if (text.length === 0) {
      throw fatal(ERRCODE.OBJECT_NOT_IN_PREREQUISITE_STATE, `lock file "${path}" is empty`, {
        hint: "Either another server is starting, or the lock file is the remnant " +
          "of a previous server startup crash.",
      });
    }
    const otherPid = Number.parseInt(text, 10);
    if (!Number.isInteger(otherPid) || otherPid <= 0) {
      throw fatal(
        ERRCODE.OBJECT_NOT_IN_PREREQUISITE_STATE,
        `bogus data in lock file "${path}": "${text.split("\n")[0]}"`,
      );
    }
    // Our own PID or our parent's can be in a file left over from before a
    // reboot; neither can be a postmaster competing with us.
    if (otherPid !== myPid && otherPid !== process.ppid && processIsAlive(otherPid)) {
      throw fatal(ERRCODE.OBJECT_NOT_IN_PREREQUISITE_STATE, `lock file "${path}" already exists`, {
        hint: `Is another postmaster (PID ${otherPid}) running in data directory "${this.path}"?`,
      });
    }
    try {
      unlinkSync(path);
    } catch (e) {
      if (errorCode(e) !== "ENOENT") {
        throw fatal(IO_ERROR, `could not remove old lock file "${path}": ${strerror(e)}`, {
          hint: "The file seems accidentally left over, but it could not be removed. " +
            "Please remove the file by hand and try again.",
        });
      }
    }
  }
}

/** Opens (does not check) a data directory. */
export function openDataDirectory(path: string): DataDirectory {
  return new NodeDataDirectory(path);
}
