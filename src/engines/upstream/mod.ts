/**
 * @module
 * The upstream engine for pgts: in session mode each session is a dedicated
 * connection to a real PostgreSQL server, so its semantics are the
 * upstream's own; in transaction mode (`UpstreamPool`) clients share pooled
 * connections per (database, user), their settings and prepared statements
 * carried from connection to connection. Selected with `engine = 'postgres://user:pass@host:port/db'`
 * or `pgts start --engine URL`. Sockets come from an injected `connect`; see
 * README.md for who logs in as whom and what is relayed how.
 */

export {
  type OpenOptions,
  openUpstream,
  type UpstreamConnect,
  type UpstreamStartTls,
} from "./connect.ts";
export { UpstreamEngine, type UpstreamEngineOptions } from "./engine.ts";
export { UpstreamSession } from "./session.ts";
export {
  checkEngineSetting,
  isUpstreamUrl,
  NO_SSL,
  parseUpstreamUrl,
  redact,
  type UpstreamAddress,
  type UpstreamTarget,
} from "./url.ts";
export {
  DEFAULT_POOL_SETTINGS,
  type PoolMode,
  type PoolModes,
  poolModesOf,
  type PoolSettings,
  poolSettingsOf,
  poolsTransactions,
} from "./pool-settings.ts";
export { UpstreamPool, type UpstreamPoolOptions } from "./pool.ts";
export { PooledSession } from "./pooled-session.ts";
