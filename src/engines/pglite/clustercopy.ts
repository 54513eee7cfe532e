/**
 * The copy CREATE DATABASE makes of its template's PGlite cluster, as
 * PostgreSQL's FILE_COPY strategy copies a template's directory: every
 * file, and every file and directory on disk before the command is
 * answered.
 *
 * pg_wal is most of a small cluster's bytes and almost none of what the copy
 * needs. After the CHECKPOINT that precedes a copy (or the shutdown
 * checkpoint of a closed engine), the copy's start-up reads WAL only from the
 * checkpoint's redo point to the end of the checkpoint record. Older
 * segments and recycled ones (16 MB each, named for the future) are left out,
 * and the segment that holds the checkpoint is copied up to the page after
 * the record and extended to its full size with a hole: reading zeros there
 * is how PostgreSQL recognises the end of WAL. Where pg_control cannot be
 * read that way, or the template was not left at a checkpoint, everything is
 * copied.
 */

import {
  closeSync,
  cpSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
  truncateSync,
  writeSync,
} from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { isWalSegment } from "./controlfile.ts";

/** XLOG_BLCKSZ: WAL pages are 8 kB. */
const WAL_PAGE = 8192;

/** ControlFileData's head, the same since PostgreSQL 11: state, then checkPoint, then checkPointCopy.redo. */
const CONTROL_STATE = 16;
const CONTROL_CHECKPOINT = 32;
const CONTROL_REDO = 40;
/** DBState's DB_SHUTDOWNED: the cluster was left at its shutdown checkpoint. */
const DB_SHUTDOWNED = 1;

/** fsyncs at once: enough to let the disk merge them, few enough for libuv's pool. */
const FSYNC_CONCURRENCY = 16;

interface WalNeed {
  /** Segment files to copy whole (redo's segment when the record is in a later one). */
  readonly whole: readonly string[];
  /** The checkpoint record's segment, and how many of its bytes to copy. */
  readonly last: string;
  readonly bytes: number;
}

/**
 * Copies cluster directory `from` to `to` (which must not exist).
 * `atCheckpoint`: the caller has just run CHECKPOINT and holds the engine,
 * so nothing follows the checkpoint record in WAL.
 */
export function copyCluster(from: string, to: string, atCheckpoint: boolean): void {
  const need = walNeeded(from, atCheckpoint);
  if (need === null) {
    cpSync(from, to, { recursive: true, filter: (src) => !templateOnly(src) });
    return;
  }
  cpSync(from, to, {
    recursive: true,
    filter: (src) => !isWalSegment(src) && !templateOnly(src),
  });
  for (const name of need.whole) cpSync(join(from, "pg_wal", name), join(to, "pg_wal", name));
  copyPrefix(join(from, "pg_wal", need.last), join(to, "pg_wal", need.last), need.bytes);
}

/**
 * What belongs to the template's own life, not to its contents: its
 * segments' archive status (the copy's WAL is archived as its own, under
 * its name) and an archive recovery it has yet to run.
 */
function templateOnly(src: string): boolean {
  return /(^|\/)pg_wal\/archive_status\/./.test(src) ||
    /(^|\/)(recovery\.signal|pgts_recovery_result)$/.test(src);
}

/** The WAL a copy of `dir` needs, or null to copy it all. */
function walNeeded(dir: string, atCheckpoint: boolean): WalNeed | null {
  let control: Uint8Array;
  try {
    control = readFileSync(join(dir, "global", "pg_control"));
  } catch {
    return null;
  }
  if (control.length < CONTROL_REDO + 8) return null;
  const view = new DataView(control.buffer, control.byteOffset, control.byteLength);
  if (!atCheckpoint && view.getUint32(CONTROL_STATE, true) !== DB_SHUTDOWNED) return null;
  const checkPoint = view.getBigUint64(CONTROL_CHECKPOINT, true);
  const redo = view.getBigUint64(CONTROL_REDO, true);
  if (redo > checkPoint || checkPoint === 0n) return null;

  const segments = new Map<bigint, string>(); // segment number → file name (highest timeline)
  let segSize = 0;
  for (const name of readdirSync(join(dir, "pg_wal")).sort()) {
    if (!isWalSegment(`pg_wal/${name}`)) continue;
    const size = statSync(join(dir, "pg_wal", name)).size;
    if (segSize === 0) segSize = size;
    if (size !== segSize) return null;
    segments.set(
      BigInt(`0x${name.slice(8, 16)}`) * 0x100000000n / BigInt(size) +
        BigInt(`0x${name.slice(16)}`),
      name,
    );
  }
  if (segSize === 0 || (segSize & (segSize - 1)) !== 0) return null;
  const size = BigInt(segSize);
  const first = redo / size;
  const lastSeg = checkPoint / size;
  const whole: string[] = [];
  for (let n = first; n < lastSeg; n++) {
    const name = segments.get(n);
    if (name === undefined) return null;
    whole.push(name);
  }
  const last = segments.get(lastSeg);
  if (last === undefined) return null;
  // The record (about a hundred bytes) may cross into the next page; a page more is a margin.
  const offset = Number(checkPoint % size);
  const bytes = Math.min(segSize, (Math.floor(offset / WAL_PAGE) + 2) * WAL_PAGE);
  return { whole, last, bytes };
}

/** Copies the first `bytes` of `from` to `to`, then makes `to` as long as `from` with a hole. */
function copyPrefix(from: string, to: string, bytes: number): void {
  const full = statSync(from).size;
  const buf = new Uint8Array(bytes);
  const src = openSync(from, "r");
  try {
    let got = 0;
    while (got < bytes) {
      const n = readSync(src, buf, got, bytes - got, got);
      if (n === 0) break;
      got += n;
    }
    const dst = openSync(to, "wx", 0o600);
    try {
      let put = 0;
      while (put < got) put += writeSync(dst, buf, put, got - put, put);
    } finally {
      closeSync(dst);
    }
  } finally {
    closeSync(src);
  }
  truncateSync(to, full);
}

/**
 * fsyncs every file under `dir`, then its directories (deepest first), then
 * `dir`'s parent, which names it. Files go several at a time: the disk
 * commits their journal entries together.
 */
export async function fsyncTree(dir: string): Promise<void> {
  const files: string[] = [];
  const dirs: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, e.name);
      if (e.isDirectory()) walk(path);
      else if (e.isFile()) files.push(path);
    }
    dirs.push(d);
  };
  walk(dir);
  let next = 0;
  const worker = async () => {
    while (next < files.length) await fsyncPath(files[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(FSYNC_CONCURRENCY, files.length) }, worker));
  for (const d of dirs) await fsyncPath(d); // walk() lists a directory after its children
  await fsyncPath(join(dir, ".."));
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
