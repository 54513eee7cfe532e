/**
 * The in-process adapter: children as tasks in the postmaster's realm
 * (`InprocLauncher`) and sockets as in-memory pairs (`MemoryNetAdapter`),
 * so the whole postmaster runs in one process with no sockets at all.
 *
 * @module
 */

export { InprocLauncher, type InprocLauncherOptions } from "./launcher.ts";
export { connectionPair, MemoryConnection, MemoryNetAdapter } from "./net.ts";
