/**
 * The postmaster: PostgreSQL's process supervisor for pgts. Construct a
 * `Postmaster` with a ChildLauncher and NetAdapter from an adapter, a
 * settings source and the entries of the children it runs, then `start()`
 * it and await `exited`. Children use `PostmasterLink`,
 * `installBackendSignalHandlers` and `registerDynamicBackgroundWorker`.
 *
 * @module
 */

export {
  type BackgroundWorkerInfo,
  type ChildInfo,
  type PMStatus,
  Postmaster,
  type PostmasterHooks,
  type PostmasterOptions,
} from "./postmaster.ts";
export type { PMChildParams, PostmasterEntries } from "./pmlaunch.ts";
export {
  type BackendActivity,
  PM_STATES,
  type PMState,
  type PostmasterSignal,
  type QuitSignalReason,
  Shutdown,
  type ShutdownLevel,
} from "./pmstate.ts";
export { BACKEND_TYPES, type BackendType, backendTypeDesc } from "./backendtype.ts";
export {
  type BackgroundWorkerHandle,
  type BackgroundWorkerSpec,
  BGW_DEFAULT_RESTART_INTERVAL,
  BGW_EXTRALEN,
  BGW_NEVER_RESTART,
  type BgwHandleStatus,
  BGWORKER_BACKEND_DATABASE_CONNECTION,
  BGWORKER_SHMEM_ACCESS,
  type BgWorkerStartTime,
} from "./bgworker.ts";
export {
  type BackgroundWorkerEnv,
  type BackgroundWorkerMain,
  type BgWorkerEntry,
  registerDynamicBackgroundWorker,
} from "./bgworker_main.ts";
export { type PMSignalReason, PostmasterLink, PostmasterRequestError } from "./pmsignal.ts";
export {
  type BackendSignalHandling,
  installBackendSignalHandlers,
  quickdieReport,
} from "./interrupt.ts";
export { POSTMASTER_SETTING_DEFAULTS, settingsFrom, type SettingsSource } from "./settings.ts";
export type * from "../adapter.ts";
