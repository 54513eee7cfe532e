/**
 * @module
 * The upstream engine for pgts: each session is a dedicated connection to a
 * real PostgreSQL server (session mode), so its semantics are the
 * upstream's own. Selected with `engine = 'postgres://user:pass@host:port/db'`
 * or `pgts start --engine URL`. Sockets come from an injected `connect`; see
 * README.md for who logs in as whom and what is relayed how.
 */

export { type OpenOptions, openUpstream, type UpstreamConnect } from "./connect.ts";
export { UpstreamEngine, type UpstreamEngineOptions } from "./engine.ts";
export { UpstreamSession } from "./session.ts";
export {
  isUpstreamUrl,
  parseUpstreamUrl,
  redact,
  type UpstreamAddress,
  type UpstreamTarget,
} from "./url.ts";
