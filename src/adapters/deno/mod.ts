/**
 * @module
 * The Deno adapter: fork children that take client sockets over IPC
 * (default), Web Worker children with relayed clients, and a node:net
 * NetAdapter.
 */

export { DenoSubprocessLauncher, type DenoSubprocessLauncherOptions } from "./launcher.ts";
export { DenoNetAdapter } from "./net.ts";
export { CHILD_FLAG, runChild, runChildFromArgv, type RunChildOptions } from "./child.ts";
export { WorkerLauncher } from "../worker/launcher.ts";
export { EXIT_CRASH } from "../child/envelope.ts";
