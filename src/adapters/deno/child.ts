/**
 * The entry of a Deno subprocess child (DenoSubprocessLauncher), and the only
 * place a Deno child calls `process.exit`. Forked with CHILD_FLAG; a CLI that
 * is itself the child program calls `runChildFromArgv()`.
 *
 * Signals are OS signals through `Deno.addSignalListener`, except SIGUSR1:
 * Deno 2.9 opens its inspector on SIGUSR1 whether or not a listener exists,
 * so the launcher sends that one as an IPC message instead.
 */

import type net from "node:net";
import process from "node:process";
import type { Connection } from "../../core/adapter.ts";
import type { ChildHooks } from "../child/childenv.ts";
import { NodeSocketConnection } from "../node/nodeconn.ts";
import type { StartPayload } from "../child/envelope.ts";
import { runSubprocessChild } from "../child/subprocess_child.ts";

/** The argument that makes a pgts program run as a child. */
export const CHILD_FLAG = "--pgts-child";
/** With CHILD_FLAG: a pooled child, started ahead and reused (see subprocess_child.ts). */
export const POOL_FLAG = "--pgts-pool";
/** With POOL_FLAG, `--pgts-preload=<module>`: the module a pooled child loads while it waits. */
export const PRELOAD_FLAG = "--pgts-preload=";

export interface RunChildOptions {
  /** Finds a child main without a dynamic import (a compiled binary's registry). */
  readonly resolveMain?: ChildHooks["resolveMain"];
  /** The process's argv, for POOL_FLAG and PRELOAD_FLAG. */
  readonly argv?: readonly string[];
}

function openClient(start: StartPayload, handle: unknown): Promise<Connection | null> {
  const client = start.client;
  if (client === null) return Promise.resolve(null);
  if (client.via !== "handle" || handle === undefined || handle === null) {
    return Promise.reject(new Error("start message carried no client socket"));
  }
  return Promise.resolve(new NodeSocketConnection(handle as net.Socket, client.remote));
}

/** Runs this process as a pgts child and exits with its code. */
export function runChild(options: RunChildOptions = {}): void {
  const argv = options.argv ?? process.argv;
  const preload = argv.find((a) => a.startsWith(PRELOAD_FLAG))?.slice(PRELOAD_FLAG.length);
  runSubprocessChild({
    openClient,
    installSignal(sig, listener) {
      if (sig !== "SIGUSR1") Deno.addSignalListener(sig, listener);
    },
    removeSignal(sig, listener) {
      if (sig !== "SIGUSR1") Deno.removeSignalListener(sig, listener);
    },
    reuse: argv.includes(POOL_FLAG),
    ...(preload !== undefined && preload !== "" ? { preload } : {}),
    ...(options.resolveMain ? { resolveMain: options.resolveMain } : {}),
  }).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(`pgts child (PID ${process.pid}) failed: ${String(error)}`);
      process.exit(2);
    },
  );
}

/**
 * For a CLI: if `argv` carries CHILD_FLAG, runs this process as a child
 * (which exits by itself when done) and returns true; otherwise false.
 */
export function runChildFromArgv(
  argv: readonly string[] = process.argv,
  options: RunChildOptions = {},
): boolean {
  if (!argv.includes(CHILD_FLAG)) return false;
  runChild({ ...options, argv });
  return true;
}

if (import.meta.main) runChildFromArgv();
