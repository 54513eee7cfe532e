/**
 * A COPY FROM STDIN that reaches the engine without its data: the session
 * feeds every one it recognises, and any other (however it got there) must
 * fail with an ERROR, the backend serving on. Before, it read end of file
 * in the middle of its data, PostgreSQL's FATAL "protocol synchronization
 * was lost", which ended the engine's one backend and every session with it
 * (`copy t from /* a comment *\/ stdin` from any client did that).
 * Driven here on the raw executor of each placement, below the sessions.
 */

import { afterAll, describe, expect, test } from "bun:test";
import type { RawExecutor } from "../../../src/engines/pglite/executor.ts";
import { startMemoryExecutor } from "../../helpers/engine-server.ts";
import { BE } from "../../../src/core/protocol/constants.ts";
import { concat, fe } from "../../../src/engines/pglite/wire.ts";

/** A frontend message of `type` whose body is `body`'s bytes (NULs and all). */
function frontend(type: string, body: string): Uint8Array {
  const b = new TextEncoder().encode(body);
  const m = new Uint8Array(5 + b.length);
  m[0] = type.charCodeAt(0);
  new DataView(m.buffer).setInt32(1, 4 + b.length);
  m.set(b, 5);
  return m;
}

/** The answer's messages: type letters, and each ErrorResponse's SQLSTATE and message. */
async function run(ex: RawExecutor, bytes: Uint8Array): Promise<string[]> {
  const parts: Uint8Array[] = [];
  await ex.exec(bytes, (c) => void parts.push(c.slice()));
  const b = concat(parts);
  const out: string[] = [];
  for (let i = 0; i < b.length;) {
    const len = new DataView(b.buffer, b.byteOffset + i + 1, 4).getInt32(0);
    const body = b.subarray(i + 5, i + 1 + len);
    if (b[i] === BE.ErrorResponse) {
      const fields = new Map<string, string>();
      for (let j = 0; j < body.length && body[j] !== 0;) {
        const end = body.indexOf(0, j + 1);
        fields.set(
          String.fromCharCode(body[j]!),
          new TextDecoder().decode(body.subarray(j + 1, end)),
        );
        j = end + 1;
      }
      out.push(`E ${fields.get("C")} ${fields.get("M")}`);
    } else out.push(String.fromCharCode(b[i]!));
    i += 1 + len;
  }
  return out;
}

const executors: RawExecutor[] = [];
afterAll(async () => {
  for (const ex of executors) await ex.close();
});

for (const placement of ["worker", "inline"] as const) {
  describe(`an unfed COPY FROM STDIN (${placement} placement)`, () => {
    let ex: RawExecutor;
    test("fails as a Query of its own, and the backend serves on", async () => {
      ex = await startMemoryExecutor({ placement });
      executors.push(ex);
      expect(await run(ex, fe.query("create table t (a int)"))).toEqual(["C", "Z"]);
      const answer = await run(ex, fe.query("copy t from stdin"));
      expect(answer[0]).toBe("G");
      expect(answer[1]).toMatch(/^E 57014 COPY from stdin failed: pgts did not take this/);
      expect(answer.slice(2)).toEqual(["Z"]);
      expect(await run(ex, fe.query("select count(*) from t"))).toEqual(["T", "D", "C", "Z"]);
    }, 60_000);

    test("fails in an extended batch, which still ends with one ReadyForQuery", async () => {
      const batch = concat([
        frontend("P", "\0copy t from stdin\0\0\0"),
        frontend("B", "\0\0\0\0\0\0\0\0"),
        fe.execute(""),
        fe.sync(),
      ]);
      const answer = await run(ex, batch);
      expect(answer.slice(0, 3)).toEqual(["1", "2", "G"]);
      expect(answer[3]).toMatch(/^E 57014 COPY from stdin failed/);
      expect(answer.slice(4)).toEqual(["Z"]);
      // Its transaction is over: the next batch runs in a new one.
      expect(await run(ex, fe.query("insert into t values (1)"))).toEqual(["C", "Z"]);
      expect(await run(ex, fe.query("select a from t"))).toEqual(["T", "D", "C", "Z"]);
    }, 60_000);

    test(
      "fails with messages behind it in its input, which run as they would after it",
      async () => {
        // A simple Query, then another: the second is not read as the COPY's data.
        const answer = await run(
          ex,
          concat([fe.query("copy t from stdin"), fe.query("select 2")]),
        );
        expect(answer[0]).toBe("G");
        expect(answer[1]).toMatch(/^E 57014 COPY from stdin failed/);
        expect(answer.slice(2)).toEqual(["Z", "T", "D", "C", "Z"]);
        // An extended batch that executes another statement after it: skipped to
        // the Sync, as after any error in a batch.
        const batch = concat([
          frontend("P", "\0copy t from stdin\0\0\0"),
          frontend("B", "\0\0\0\0\0\0\0\0"),
          fe.execute(""),
          frontend("P", "\0select 3\0\0\0"),
          frontend("B", "\0\0\0\0\0\0\0\0"),
          fe.execute(""),
          fe.sync(),
          fe.query("select 4"),
        ]);
        const extended = await run(ex, batch);
        expect(extended.slice(0, 3)).toEqual(["1", "2", "G"]);
        expect(extended[3]).toMatch(/^E 57014 COPY from stdin failed/);
        expect(extended.slice(4)).toEqual(["Z", "T", "D", "C", "Z"]);
      },
      60_000,
    );
  });
}
