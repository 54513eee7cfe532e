/**
 * The background workers of tests/fixtures/bgworkers.ts as end-to-end tests
 * register them (`shared_preload_libraries`) and what they report.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { PgtsServer } from "./pgts.ts";
import { ROOT } from "./pgts.ts";

export const BGWORKERS_FIXTURE = join(ROOT, "tests/fixtures/bgworkers.ts");

/** A shared_preload_libraries value naming fixture exports. */
export function preloadOf(...exports: string[]): string {
  return exports.map((name) => `${BGWORKERS_FIXTURE}#${name}`).join(",");
}

export interface WorkerEvent {
  readonly name: string;
  readonly pid: number;
  readonly event: string;
  readonly t: number;
  readonly [key: string]: unknown;
}

/** What the fixture workers recorded so far, oldest first; optionally one worker's. */
export function workerEvents(server: PgtsServer, name?: string): WorkerEvent[] {
  let text = "";
  try {
    text = readFileSync(join(server.dataDir, "bgworkers.jsonl"), "utf8");
  } catch {
    return [];
  }
  const events = text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as WorkerEvent);
  return name === undefined ? events : events.filter((e) => e.name === name);
}
