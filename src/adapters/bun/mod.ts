/**
 * @module
 * The Bun adapter: subprocess children that take client sockets as fds, a
 * `Bun.listen` NetAdapter, and the child entry for compiled binaries.
 */

export {
  BunSubprocessLauncher,
  type BunSubprocessLauncherOptions,
  isCompiledBinary,
} from "./launcher.ts";
export { BunNetAdapter } from "./net.ts";
export { CHILD_FLAG, runChild, runChildFromArgv, type RunChildOptions } from "./child.ts";
export { WorkerLauncher } from "../worker/launcher.ts";
export { EXIT_CRASH } from "../child/envelope.ts";
