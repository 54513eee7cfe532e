/**
 * Keeps the engine's Worker off the CPU that the thread talking to it
 * tends to run on (pgts.engine_cpu_affinity, on by default), on a small
 * Linux machine.
 *
 * Every statement wakes one of the two threads from the other, and Linux
 * wakes a thread where its waker runs when it can: on a 2-CPU VM the main
 * thread and the Worker kept landing on one CPU, and each migration left a
 * thread's caches behind. Pinned with `taskset`, PGlite's exec of a
 * select-only statement took 27.6 µs instead of 49.8 back to back, and 67
 * instead of 122 after a 1 ms pause. With the Worker on every allowed CPU
 * but the first (sched_setaffinity) and the main thread free, the other
 * thread goes where the Worker is not: against off, in alternating rounds
 * of one run (fsync off, medians of 6), select-only `-c 4` 18,379 → 20,473
 * TPS (80 → 73.5 µs of server CPU a transaction), TPC-B `-c 4` 1,505–1,819
 * → 1,756–1,870 once warm; `SELECT 1` and connections/s level. Pinning the
 * main thread to the first CPU as well gained a little more (21,321 TPS)
 * but kept that thread, which reads every CancelRequest, from leaving a
 * busy CPU; left free it can.
 *
 * Only while one engine Worker is open in the realm: a second database's
 * engine opening sends every Worker back to all the CPUs (two busy engines
 * kept to one CPU would share it), and when one is left it is pinned again.
 * Only where the process may run on 2 to MAX_CPUS CPUs: on a larger machine
 * an idle CPU is near and a thread fixed to one could only lose. Two pgts
 * servers on one such machine keep their Workers to the same CPUs, and two
 * busy ones would share them: set it off there. Threads a pinned Worker
 * starts (Bun's collector thread) inherit its CPUs; helper threads the
 * runtime started before keep every CPU.
 *
 * Through glibc (libc.ts); anywhere else (another libc, Node, no
 * permission) nothing is done.
 */

import { openLibc } from "./libc.ts";

/** More CPUs than this, and nothing is pinned. */
const MAX_CPUS = 4;
/** Bytes of a cpu_set_t (glibc's, 1024 CPUs). */
const CPU_SET_BYTES = 128;

interface Affinity {
  /** The calling thread's allowed CPUs, ascending; null on failure. */
  get(): number[] | null;
  /** Confines the calling thread to `cpus`; whether it took. */
  set(cpus: readonly number[]): boolean;
}

function mask(cpus: readonly number[]): Uint8Array {
  const m = new Uint8Array(CPU_SET_BYTES);
  for (const c of cpus) if (c >= 0 && c < CPU_SET_BYTES * 8) m[c >> 3]! |= 1 << (c & 7);
  return m;
}

function cpusOf(m: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < m.length * 8; i++) if ((m[i >> 3]! & (1 << (i & 7))) !== 0) out.push(i);
  return out;
}

/** libcAffinity's answer, once per realm (undefined before). */
let libc: Affinity | null | undefined;

/** The calling thread's affinity through glibc, or null; libc is opened once per realm. */
function libcAffinity(): Affinity | null {
  if (libc !== undefined) return libc;
  const sig = ["i32", "usize", "buffer"] as const;
  const f = openLibc({ sched_getaffinity: sig, sched_setaffinity: sig });
  if (f === null) return libc = null;
  return libc = {
    get() {
      const m = new Uint8Array(CPU_SET_BYTES);
      return f.sched_getaffinity(0, CPU_SET_BYTES, m) === 0 ? cpusOf(m) : null;
    },
    set: (cpus) => f.sched_setaffinity(0, CPU_SET_BYTES, mask(cpus)) === 0,
  };
}

/** pgts.engine_cpu_affinity as the realm's starter set it: off until then (`pgts start` sets it). */
let enabled = false;
/** The CPUs pinning shares out (this process's, when 2 to MAX_CPUS); null: none; undefined before. */
let machine: number[] | null | undefined;
/** The engine Workers open in this realm. */
const open = new Set<EngineThread>();

/** An open engine Worker, told its CPUs again when the number of open ones changes. */
export interface EngineThread {
  keepTo(cpus: readonly number[]): void;
}

/** pgts.engine_cpu_affinity, for the engines this realm opens from now on. */
export function setEngineCpuAffinity(on: boolean): void {
  enabled = on;
}

function machineCpus(): number[] | null {
  if (machine !== undefined) return machine;
  machine = null;
  const cpus = libcAffinity()?.get() ?? null;
  if (cpus !== null && cpus.length >= 2 && cpus.length <= MAX_CPUS) machine = cpus;
  return machine;
}

/**
 * A new engine Worker: the CPUs it is to keep to from its open, or null
 * (the process's, which it has from the thread that started it). A lone
 * Worker keeps to all CPUs but the first; a second one opening sends the
 * first back to all of them, as two busy engines on one CPU would share it.
 */
export function engineThreadOpened(t: EngineThread): number[] | null {
  if (!enabled) return null;
  const cpus = machineCpus();
  if (cpus === null) return null;
  open.add(t);
  // The first one back to every CPU: the two would share the rest.
  if (open.size === 2) {
    for (const o of open) if (o !== t) o.keepTo(cpus);
  }
  return open.size === 1 ? cpus.slice(1) : null;
}

/** An engine Worker closed or failed: a lone one left keeps to all CPUs but the first again. */
export function engineThreadClosed(t: EngineThread): void {
  if (!open.delete(t) || open.size !== 1 || machine == null) return;
  for (const o of open) o.keepTo(machine.slice(1));
}

/** In an engine Worker: keeps to `cpus`; whether it took. */
export function keepToCpus(cpus: readonly number[]): boolean {
  return libcAffinity()?.set(cpus) ?? false;
}
