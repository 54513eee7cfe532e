/**
 * @module
 * The PGlite engine for pgts: one PGlite backend (Postgres in WASM) serving
 * many isolated sessions through the `Engine` contract of
 * `src/core/engine/types.ts`. See README.md for what isolation covers and
 * what one backend cannot isolate.
 */

export {
  initCluster,
  type InitClusterOptions,
  openEngine,
  type OpenEngineOptions,
} from "./cluster.ts";
export { type EngineOptions, PgliteEngine } from "./engine.ts";
export { ClusterEngine, type ClusterEngineOptions } from "./dbengines.ts";
export {
  buildClusterImage,
  cachedImagePath,
  findClusterImage,
  imagesEnabled,
  type ImageSource,
  registerClusterImage,
} from "./image.ts";
export type { RawExecutor } from "./executor.ts";
export { PgliteSession } from "./session.ts";
export { recoverySettings, takeRecoverySignal } from "./recovery.ts";
export { setEngineCpuAffinity } from "./cpuaffinity.ts";
