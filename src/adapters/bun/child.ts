/**
 * The entry of a Bun subprocess child, and the only place a Bun child calls
 * `process.exit`. Run as a script (`bun child.ts --pgts-child`) by the
 * launcher, or reached from a compiled binary's CLI through
 * `runChildFromArgv()` when the binary was started with CHILD_FLAG.
 *
 * It adopts the client from fd 3 (stdio route) or from the IPC message
 * (ipc route; Bun's own socket under the node:net wrapper), maps OS signals to the main's handlers, and exits with the
 * code the shared child runtime settles on: the main's return value, 1 when
 * the postmaster died, 2 when anything threw uncaught.
 */

import type net from "node:net";
import process from "node:process";
import type { Connection } from "../../core/adapter.ts";
import type { ChildHooks } from "../child/childenv.ts";
import { NodeSocketConnection } from "../node/nodeconn.ts";
import type { StartPayload } from "../child/envelope.ts";
import { runSubprocessChild } from "../child/subprocess_child.ts";
import { adoptNodeSocket, adoptSocketFd } from "./net.ts";

/** The argument that makes a pgts program (script or compiled binary) run as a child. */
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

async function openClient(start: StartPayload, handle: unknown): Promise<Connection | null> {
  const client = start.client;
  if (client === null) return null;
  switch (client.via) {
    case "fd":
      return await adoptSocketFd(client.fd, client.remote);
    case "handle":
      if (handle === undefined || handle === null) {
        throw new Error("start message carried no client socket");
      }
      return adoptNodeSocket(handle, client.remote) ??
        new NodeSocketConnection(handle as net.Socket, client.remote);
    case "relay":
      throw new Error("a subprocess child cannot serve a relayed client");
    default:
      return client satisfies never;
  }
}

/** Runs this process as a pgts child and exits with its code. */
export function runChild(options: RunChildOptions = {}): void {
  const argv = options.argv ?? process.argv;
  const preload = argv.find((a) => a.startsWith(PRELOAD_FLAG))?.slice(PRELOAD_FLAG.length);
  runSubprocessChild({
    openClient,
    installSignal(sig, listener) {
      process.on(sig, listener);
    },
    removeSignal(sig, listener) {
      process.off(sig, listener);
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
 * (which exits by itself when done) and returns true; otherwise returns
 * false and the CLI goes on as usual.
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
