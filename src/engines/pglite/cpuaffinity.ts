/**
 * Keeps the engine's Worker and the thread that talks to it on CPUs of
 * their own (pgts.engine_cpu_affinity), on a small Linux machine.
 *
 * Every statement wakes one of the two threads from the other, and Linux
 * wakes a thread where its waker runs when it can: on a 2-CPU VM the main
 * thread and the Worker kept landing on one CPU, and each migration left a
 * thread's caches behind. With the main thread on the first allowed CPU and
 * the Worker on the others (sched_setaffinity), on against off
 * (scripts/bench/ab.sh, alternating rounds, medians of 5, fsync off):
 * select-only `-c 4` 18,728 → 23,204 TPS (84 → 68 µs of server CPU a
 * transaction), `-c 1` 14,551 → 15,852, TPC-B `-c 4` 1,595 → 1,723,
 * `-C -S -c 4` 2,255 → 2,382 connections/s, `SELECT 1` `-c 4` 29,669 →
 * 30,887; back-to-back select-only from one node-postgres client ~35%
 * faster, and a statement after a 1 ms pause took PGlite 67 µs instead of
 * 122 (the Worker's caches survive its sleep). Only where the process may
 * run on 2 to MAX_CPUS CPUs: on a larger machine an idle CPU is near and a
 * thread fixed to one could only lose. Two pgts servers busy on one small
 * machine would share those two CPUs the same way.
 *
 * Off by default: with it on, a CancelRequest's slowest answers came later
 * (`cancel-latency.ts`, 50 cancels of a CPU-bound statement, fsync on: p99
 * 11–18 ms in six runs of nine and 76, 111 and 129 ms in three, against
 * 6.5–10.6 ms in five runs with it off, the same hour), presumably because
 * the main thread, which must read the CancelRequest, cannot leave its CPU
 * while another thread holds it. Issue 19 asks for 100 ms at p99.
 *
 * Through the runtime's FFI (bun:ffi, Deno.dlopen with the ffi permission)
 * to glibc; anywhere else (another libc, Node, no permission) nothing is
 * done. Helper threads the runtime started before (its compiler's and
 * collector's) keep every CPU.
 */

import process from "node:process";

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

type DenoFfi = {
  build: { os: string };
  permissions: { querySync?: (d: { name: string }) => { state: string } };
  dlopen(
    path: string,
    symbols: Record<string, { parameters: string[]; result: string }>,
  ): { symbols: Record<string, (...args: unknown[]) => number> };
};

type BunFfi = {
  dlopen(
    path: string,
    symbols: Record<string, { args: string[]; returns: string }>,
  ): { symbols: Record<string, (...args: unknown[]) => number> };
  ptr(view: Uint8Array): unknown;
};

/** glibc's sched_getaffinity or sched_setaffinity of the calling thread with `mask`: 0 on success. */
type SchedCall = (name: "sched_getaffinity" | "sched_setaffinity", mask: Uint8Array) => number;

/** The two calls through this runtime's FFI, or null. */
function schedCalls(): SchedCall | null {
  const deno = (globalThis as { Deno?: DenoFfi }).Deno;
  if (deno !== undefined) {
    if (deno.build.os !== "linux") return null;
    if (deno.permissions.querySync?.({ name: "ffi" }).state !== "granted") return null;
    const sig = { parameters: ["i32", "usize", "buffer"], result: "i32" };
    const lib = deno.dlopen("libc.so.6", { sched_getaffinity: sig, sched_setaffinity: sig });
    const size = BigInt(CPU_SET_BYTES);
    return (name, m) => lib.symbols[name]!(0, size, m);
  }
  if (process.platform !== "linux") return null;
  const require = (import.meta as { require?: (id: string) => unknown }).require;
  if (typeof require !== "function") return null; // not Bun
  const ffi = require("bun:ffi") as BunFfi;
  const sig = { args: ["i32", "u64", "ptr"], returns: "i32" };
  const lib = ffi.dlopen("libc.so.6", { sched_getaffinity: sig, sched_setaffinity: sig });
  return (name, m) => lib.symbols[name]!(0, CPU_SET_BYTES, ffi.ptr(m));
}

/** The calling thread's affinity through glibc, or null. */
function libcAffinity(): Affinity | null {
  let call: SchedCall | null;
  try {
    call = schedCalls();
  } catch {
    return null; // no glibc, no FFI
  }
  if (call === null) return null;
  return {
    get() {
      const m = new Uint8Array(CPU_SET_BYTES);
      return call("sched_getaffinity", m) === 0 ? cpusOf(m) : null;
    },
    set: (cpus) => call("sched_setaffinity", mask(cpus)) === 0,
  };
}

let enabled = false;
/** The engine Workers' CPUs once decided (null: none pinned); undefined before. */
let planned: number[] | null | undefined;

/** pgts.engine_cpu_affinity, for the engines this realm opens from now on. */
export function setEngineCpuAffinity(on: boolean): void {
  enabled = on;
}

/**
 * For a new engine Worker: the CPUs it is to keep to, or null. The first
 * call decides for the realm, and confines the calling thread (the one
 * that runs the sessions) to the first allowed CPU.
 */
export function engineWorkerCpus(): number[] | null {
  if (!enabled) return null;
  if (planned !== undefined) return planned;
  planned = null;
  const libc = libcAffinity();
  const allowed = libc?.get() ?? null;
  if (libc === null || allowed === null || allowed.length < 2 || allowed.length > MAX_CPUS) {
    return null;
  }
  if (!libc.set([allowed[0]!])) return null;
  planned = allowed.slice(1);
  return planned;
}

/** In an engine Worker: keeps to `cpus`; whether it took. */
export function keepToCpus(cpus: readonly number[]): boolean {
  return libcAffinity()?.set(cpus) ?? false;
}
