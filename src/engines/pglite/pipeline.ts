/**
 * Which inputs take part in the engine's pipeline (scheduler.ts's hand-over,
 * executor.ts's execs one step ahead): what a session's input must be for
 * it to be granted the engine behind another's running exec, and for its
 * own exec to hand the engine on as soon as it runs.
 *
 * Both only ever cost a retry when they guess wrong: whether an exec
 * really ended idle is decided on its answer (channel.ts's endedIdle).
 */

import { FE } from "../../core/protocol/constants.ts";
import type { InputPlan } from "./naming.ts";
import { type Frame, readCString } from "./wire.ts";

/**
 * The input needs nothing of the engine but its exec: no settings, LISTEN,
 * roles, databases, temporary objects, special commands, COPY, activity
 * rows, extensions or hold cursors to note or do before or after it.
 */
export function isPlain(plan: InputPlan): boolean {
  return !plan.settingsDirty && plan.customSettings.length === 0 &&
    plan.listenOps.length === 0 && !plan.rolesDirty && !plan.databasesDirty &&
    !plan.createsTempObject && plan.special === null && plan.databaseCommand === null &&
    !plan.copyFromStdin && plan.reject === null && !plan.readsActivity &&
    !plan.needsExtensions && plan.declaredHoldCursors.length === 0 &&
    plan.closedHoldCursors.length === 0 && !plan.closesAll;
}

/** A statement that opens a transaction block (BEGIN, START TRANSACTION). */
const OPENS_BLOCK = /(?:^|;)\s*(?:begin|start)\b/i;
/** A statement that ends one, alone. */
const ENDS_BLOCK = /^\s*(?:commit|end|rollback|abort)(?:\s+(?:work|transaction))?\s*;?\s*$/i;

/**
 * The input, run from ReadyForQuery `status`, ends at ReadyForQuery 'I'
 * with one answer: one Query, or an extended batch whose one Sync is last;
 * from 'I' with no statement that opens a transaction block, inside one
 * with nothing but the COMMIT or ROLLBACK that ends it. Then its exec may
 * hand the engine on as soon as it runs.
 */
export function handsOverAfter(
  plan: InputPlan,
  frames: readonly Frame[],
  status: "I" | "T" | "E",
): boolean {
  const last = frames[frames.length - 1];
  if (last === undefined) return false;
  let answers = 0;
  for (const f of frames) if (f.type === FE.Query || f.type === FE.Sync) answers++;
  if (answers !== 1 || (last.type !== FE.Query && last.type !== FE.Sync)) return false;
  const bytes = plan.bytes;
  let statements = 0;
  for (const f of plan.frames) {
    let at: number;
    if (f.type === FE.Query) at = f.start + 5;
    else if (f.type === FE.Parse) at = readCString(bytes, f.start + 5)[1];
    else continue;
    statements++;
    const sql = readCString(bytes, at)[0];
    if (status === "I" ? OPENS_BLOCK.test(sql) : !ENDS_BLOCK.test(sql)) return false;
  }
  // Inside a block, a Bind of a statement prepared before could be anything.
  return status === "I" || statements > 0;
}
