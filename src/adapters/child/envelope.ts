/**
 * The envelope between a launcher and the child entry it starts, shared by
 * every adapter that runs children outside the postmaster's realm (Bun
 * subprocesses, Deno subprocesses, Web Workers).
 *
 * User messages (`ChildProcess.post`, `ChildEnv.post`) travel wrapped in
 * `{ t: "msg" }` so that the control traffic of the adapter itself (start,
 * signals, relayed client bytes, exit) can never be mistaken for them. Every
 * shape here must survive structured clone; nothing here touches a runtime.
 */

import type { ChildEntry, ChildExit, RemoteAddress, Signal } from "../../core/adapter.ts";
import { SIGNAL_NUMBERS } from "../../core/postmaster/backendtype.ts";

/** An exit code that PostgreSQL's postmaster treats as a crash: the code a
 * backend's quickdie() uses. A child whose main throws exits with it. */
export const EXIT_CRASH = 2;

/** What a child needs to build its ChildEnv (ChildStartInfo without the live client). */
export interface StartPayload {
  readonly pid: number;
  readonly kind: string;
  readonly name: string;
  readonly entry: ChildEntry;
  readonly params: unknown;
  /** How the client reaches the child, when there is one. */
  readonly client:
    | null
    | { readonly via: "fd"; readonly fd: number; readonly remote: RemoteAddress }
    | { readonly via: "handle"; readonly remote: RemoteAddress }
    | { readonly via: "relay"; readonly remote: RemoteAddress };
}

/** Launcher to child. */
export type ToChild =
  | { readonly t: "start"; readonly start: StartPayload }
  | { readonly t: "msg"; readonly m: unknown }
  | { readonly t: "sig"; readonly sig: Exclude<Signal, "SIGKILL"> }
  // A pooled Web Worker's module to load while it waits for its first start.
  | { readonly t: "preload"; readonly module: string }
  // Relayed client traffic (Web Workers, which cannot own a socket).
  | { readonly t: "data"; readonly b: Uint8Array }
  | { readonly t: "written"; readonly n: number }
  | { readonly t: "closed" };

/** Child to launcher. */
export type ToParent =
  | { readonly t: "msg"; readonly m: unknown }
  // The main has been called, so the handlers it installs at its start are
  // in place: signals held by the launcher until now can be delivered.
  | { readonly t: "up" }
  // A signal arrived as a message and the child has no handler for it: the
  // launcher applies the default action (terminate), as the kernel would.
  | { readonly t: "sigdefault"; readonly sig: Signal }
  | { readonly t: "exit"; readonly code: number }
  | { readonly t: "write"; readonly b: Uint8Array }
  | { readonly t: "pause" }
  | { readonly t: "resume" }
  | { readonly t: "end" }
  | { readonly t: "destroy" };

export function isToParent(x: unknown): x is ToParent {
  return typeof x === "object" && x !== null && typeof (x as { t?: unknown }).t === "string";
}

export function isToChild(x: unknown): x is ToChild {
  return typeof x === "object" && x !== null && typeof (x as { t?: unknown }).t === "string";
}

// Signals outside pgts's vocabulary that can still end a child (Linux numbers).
const OTHER_SIGNALS: Record<string, number> = {
  SIGILL: 4,
  SIGTRAP: 5,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGALRM: 14,
};

/**
 * Turns a runtime's exit report into a ChildExit. A death by a signal that
 * `Signal` does not name (SIGSEGV...) is reported as the shell would, exit
 * code 128 + signo, which the postmaster treats as a crash like any code
 * other than 0 and 1.
 */
export function toChildExit(
  code: number | null | undefined,
  signal: string | number | null | undefined,
): ChildExit {
  if (signal !== null && signal !== undefined) {
    if (typeof signal === "string" && signal in SIGNAL_NUMBERS) {
      return { code: null, signal: signal as Signal };
    }
    if (typeof signal === "number") {
      for (const [name, n] of Object.entries(SIGNAL_NUMBERS)) {
        if (n === signal) return { code: null, signal: name as Signal };
      }
      return { code: 128 + signal, signal: null };
    }
    return { code: 128 + (OTHER_SIGNALS[signal] ?? 0), signal: null };
  }
  return { code: code ?? EXIT_CRASH, signal: null };
}
