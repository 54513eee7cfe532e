/**
 * temp_buffers per session. PostgreSQL sets a backend's local buffers up
 * (localbuf.c's NLocBuffer, sized by temp_buffers) the first time the
 * backend reads or writes a temporary table's page, and from then on its
 * check hook, check_temp_buffers, refuses another value ("cannot be
 * changed after any temporary tables have been accessed in the session").
 * PGlite has one backend for every session: once any session had used a
 * temporary table, every other session was refused SET temp_buffers from
 * its first statement.
 *
 * pgts wraps the check hook: a session that has not used a temporary table
 * yet may set any value (what PostgreSQL's fresh backend allows); one that
 * has gets PostgreSQL's own refusal for any value but the one it has. A
 * session has used one once the backend's local buffer counters
 * (pgBufferUsage's local_blks_*) moved during one of its execs, as they do
 * at every temporary page PostgreSQL reads, finds or extends. What the
 * backend's local buffers are stays the engine's: as many as the first
 * session that used a temporary table had set, for every session.
 *
 * pgts's own work (a switch between sessions' settings) is never refused.
 * Runs on the thread that runs PGlite.
 */

import type { WasmTools } from "./wasmtools.ts";
import { GUC_INT_VARIABLE, type IntCheckHook, intParameter } from "./guard.ts";

/** PGC_S_TEST: a value checked for ALTER ROLE/DATABASE … SET or CREATE FUNCTION, not applied. */
const PGC_S_TEST = 12;
/** `BufferUsage`'s local_blks_hit, _read, _dirtied and _written (int64 each, instrument.h). */
const LOCAL_BLKS = 32;
const LOCAL_COUNTERS = 4;

export interface TempBuffersGuard {
  /** The session (pid) whose exec runs next, or null for pgts's own work. */
  runAs(pid: number | null): void;
  /** After an exec: whether its session used a temporary table in it. */
  afterExec(): void;
  /** The sessions `gone` takes ended (or their pid is another session's now). */
  dropSessions(gone: (pid: number) => boolean): void;
}

/**
 * Wraps temp_buffers' check hook; a reason (and the hook left as it is)
 * when PGlite's record or its pgBufferUsage is not as expected.
 */
export function installTempBuffersGuard(tools: WasmTools): TempBuffersGuard | string {
  const ex = tools.ex as typeof tools.ex & { pgBufferUsage?: unknown };
  if (!(ex.pgBufferUsage instanceof WebAssembly.Global)) return "no pgBufferUsage export";
  const usage = ex.pgBufferUsage.value as number;
  let param: ReturnType<typeof intParameter>;
  try {
    param = intParameter(tools, "temp_buffers", { boot: 1024, min: 100, max: 0x3fffffff });
  } catch (e) {
    return (e as Error).message;
  }
  const { record, original, replace } = param;
  const variable = tools.view().getUint32(record + GUC_INT_VARIABLE, true);

  /** Sessions (pids) that have used a temporary table. */
  const used = new Set<number>();
  let current: number | null = null;
  let countersAtStart = 0n;
  const localBlocks = (): bigint => {
    const v = tools.view();
    let n = 0n;
    for (let i = 0; i < LOCAL_COUNTERS; i++) n += v.getBigInt64(usage + LOCAL_BLKS + 8 * i, true);
    return n;
  };
  const usedNow = (pid: number) => used.has(pid) || localBlocks() !== countersAtStart;

  const hook: IntCheckHook = (newval, extra, source) => {
    if (source === PGC_S_TEST || current === null || !usedNow(current)) return 1;
    const v = tools.view();
    const value = v.getInt32(newval, true);
    if (value === v.getInt32(variable, true)) return 1;
    // PostgreSQL's refusal, detail and all: its hook refuses a value other
    // than the backend's NLocBuffer; given that one, it is asked about
    // another, and the value put back for the message.
    if (original(newval, extra, source) === 0) return 0;
    v.setInt32(newval, value + 1, true);
    try {
      return original(newval, extra, source);
    } finally {
      tools.view().setInt32(newval, value, true);
    }
  };
  replace(hook);

  return {
    runAs(pid) {
      current = pid;
      // pgts's own work is never refused: its counters are not read.
      if (pid !== null) countersAtStart = localBlocks();
    },
    afterExec() {
      if (current !== null && localBlocks() !== countersAtStart) used.add(current);
    },
    dropSessions(gone) {
      for (const pid of used) if (gone(pid)) used.delete(pid);
    },
  };
}
