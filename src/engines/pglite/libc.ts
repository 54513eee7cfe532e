/**
 * glibc's functions through the runtime's FFI (bun:ffi, or Deno.dlopen with
 * the ffi permission), for what the engine's thread asks of the kernel
 * itself: which CPUs it keeps to (cpuaffinity.ts) and which pages of
 * PGlite's heap it gives back (heaptrim.ts). Anywhere else (another OS or
 * libc, Node, no permission) there are none, and the callers do without.
 */

import process from "node:process";

/**
 * An argument's C type: `int`, `size_t`, or a pointer to the bytes of a
 * Uint8Array (its own offset and length: a view of part of a buffer points
 * at that part).
 */
export type LibcArg = "i32" | "usize" | "buffer";

/** A libc function of `int` result, called with numbers and Uint8Arrays. */
export type LibcFunction = (...args: (number | Uint8Array)[]) => number;

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

/**
 * The named functions of glibc, each with its arguments' types, or null
 * where this runtime cannot call them. Opens libc on every call: callers
 * keep what they get.
 */
export function openLibc<N extends string>(
  functions: Readonly<Record<N, readonly LibcArg[]>>,
): Record<N, LibcFunction> | null {
  try {
    const names = Object.keys(functions) as N[];
    const deno = (globalThis as { Deno?: DenoFfi }).Deno;
    if (deno !== undefined) {
      if (deno.build.os !== "linux") return null;
      if (deno.permissions.querySync?.({ name: "ffi" }).state !== "granted") return null;
      const lib = deno.dlopen(
        "libc.so.6",
        Object.fromEntries(names.map((n) => [n, { parameters: [...functions[n]], result: "i32" }])),
      );
      return Object.fromEntries(names.map((n) => {
        const f = lib.symbols[n]!;
        const types = functions[n];
        const call: LibcFunction = (...args) =>
          f(...args.map((a, i) => types[i] === "usize" ? BigInt(a as number) : a));
        return [n, call];
      })) as Record<N, LibcFunction>;
    }
    if (process.platform !== "linux") return null;
    const require = (import.meta as { require?: (id: string) => unknown }).require;
    if (typeof require !== "function") return null; // not Bun
    const ffi = require("bun:ffi") as BunFfi;
    const bunType = { i32: "i32", usize: "u64", buffer: "ptr" } as const;
    const lib = ffi.dlopen(
      "libc.so.6",
      Object.fromEntries(
        names.map((n) => [n, { args: functions[n].map((t) => bunType[t]), returns: "i32" }]),
      ),
    );
    return Object.fromEntries(names.map((n) => {
      const f = lib.symbols[n]!;
      const call: LibcFunction = (...args) =>
        f(...args.map((a) => a instanceof Uint8Array ? ffi.ptr(a) : a));
      return [n, call];
    })) as Record<N, LibcFunction>;
  } catch {
    return null; // no glibc, no FFI
  }
}
