/**
 * What every child of a pgts server receives from the postmaster (inside
 * `params.shared`): plain, structured-cloneable data, so it crosses any
 * adapter's boundary.
 */

import type { SslConfig } from "../core/backend/secure.ts";
import type { GucSnapshot } from "../core/guc/guc.ts";
import type { ChildEnv } from "../core/adapter.ts";

/**
 * How a backend reaches the engine: the engine child over a Unix socket or
 * in the same realm, or (no engine child) an upstream PostgreSQL it dials
 * itself.
 */
export type EngineAddress =
  | { readonly kind: "unix"; readonly path: string }
  | { readonly kind: "inproc"; readonly id: string }
  | { readonly kind: "upstream"; readonly url: string };

export interface ServerParams {
  readonly dataDir: string;
  /** Every setting, as strings; rebuilt with `Guc.fromSnapshot`. Replaced on reload. */
  settings: GucSnapshot;
  /**
   * The parameters set on the command line (`-c`, `-p`) or by the server
   * itself: a reload's configuration files do not change them, as
   * PostgreSQL's command line outranks its files.
   */
  readonly commandLine?: readonly string[];
  /**
   * The file and line of each setting postgresql.conf or
   * postgresql.auto.conf set (pg_settings' sourcefile and sourceline in the
   * engine). Replaced on reload.
   */
  settingFiles?: Readonly<Record<string, readonly [file: string, line: number]>>;
  /** pg_hba.conf's text and path, read by the postmaster (and re-read on SIGHUP). */
  hba: string;
  readonly hbaFile: string;
  readonly engine: EngineAddress;
  /** The SSL files the postmaster loaded (null: ssl is off); replaced on reload when the new ones load. */
  ssl: SslConfig | null;
}

export function serverParams(env: ChildEnv): ServerParams {
  const p = env.params as { shared?: ServerParams } | null;
  if (p?.shared === undefined) throw new TypeError("A pgts child needs the server's params");
  return p.shared;
}
