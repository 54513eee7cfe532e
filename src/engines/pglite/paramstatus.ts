/**
 * ParameterStatus after start-up. PostgreSQL tells the client, just before
 * a ReadyForQuery, the new value of every GUC_REPORT parameter that differs
 * from the value it last sent (guc.c's ReportChangedGUCOptions, called by
 * the loop of postgres.c). PGlite's backend never does, and its one
 * backend serves many sessions, so pgts does it per session: the engine
 * learns the values after any exec that changed one of them
 * (gucwatch.ts), and each session keeps what its client was last told,
 * starting from the list its login sent (postinit.ts).
 *
 * Holds no engine state: it compares and writes messages.
 */

import type { ParameterStatusList } from "../../core/engine/types.ts";
import { MessageWriter, writeParameterStatus } from "../../core/protocol/mod.ts";
import { endsWithReadyForQuery } from "../../core/protocol/pipeline.ts";
import { concat } from "./wire.ts";

/** PostgreSQL 18's GUC_REPORT parameters, in its spelling. */
export const REPORTED_PARAMETERS: readonly string[] = [
  "application_name",
  "client_encoding",
  "DateStyle",
  "default_transaction_read_only",
  "in_hot_standby",
  "integer_datetimes",
  "IntervalStyle",
  "is_superuser",
  "scram_iterations",
  "search_path",
  "server_encoding",
  "server_version",
  "session_authorization",
  "standard_conforming_strings",
  "TimeZone",
];

/**
 * Whether `a` and `b` hold the same names and values, in any order (the
 * login's list and the engine's put session_authorization and
 * is_superuser in different places). Neither list repeats a name.
 */
function sameList(a: ParameterStatusList, b: ParameterStatusList): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const [name, value] = a[i]!;
    if (b[i]![0] === name) {
      if (b[i]![1] !== value) return false;
    } else if (!b.some(([n, v]) => n === name && v === value)) {
      return false;
    }
  }
  return true;
}

/** What one session's client was last told of the reported parameters. */
export class ReportedToClient {
  /** What the login sent, until a value differs from it (most sessions: never). */
  readonly #login: ParameterStatusList;
  /** What the client was told since; made at the first difference. */
  #told: Map<string, string> | null = null;
  /** The list of values last compared with: each list is compared once. */
  #compared: ParameterStatusList | null = null;

  constructor(login: ParameterStatusList) {
    this.#login = login;
  }

  /** The value of `name` the client was last told. */
  value(name: string): string | undefined {
    return this.#told?.get(name) ?? this.#login.find(([n]) => n === name)?.[1];
  }

  /**
   * The ParameterStatus messages for the values of `now` that differ from
   * what the client was last told (which they then are), or null. `now` is
   * the engine's list as of the end of the session's last exec; the same
   * list twice is compared once.
   */
  changes(now: ParameterStatusList | null): Uint8Array | null {
    if (now === null || now === this.#compared) return null;
    this.#compared = now;
    if (this.#told === null) {
      if (sameList(now, this.#login)) return null;
      this.#told = new Map(this.#login);
    }
    const told = this.#told;
    let w: MessageWriter | null = null;
    for (const [name, value] of now) {
      if (told.get(name) === value) continue;
      told.set(name, value);
      writeParameterStatus(w ??= new MessageWriter(), name, value);
    }
    return w === null ? null : w.take();
  }
  /**
   * `out` with the ParameterStatus of settings changed (as of `now()`) put
   * just before a ReadyForQuery that ends a write (DISCARD ALL's answer,
   * written whole).
   */
  before(
    out: (b: Uint8Array) => void,
    now: () => ParameterStatusList | null,
  ): (b: Uint8Array) => void {
    return (b) => {
      const status = endsWithReadyForQuery(b) ? this.changes(now()) : null;
      if (status === null) out(b);
      else out(concat([b.subarray(0, b.length - 6), status, b.subarray(b.length - 6)]));
    };
  }
}
