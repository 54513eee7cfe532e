/**
 * auth_file's parser (src/engines/upstream/auth-file.ts): pgbouncer's
 * userlist lines, each secret kind recognised, quotes doubled inside a
 * field, comments skipped, and the lines it cannot read reported.
 */

import { expect, test } from "bun:test";
import { parseAuthFile } from "../../../src/engines/upstream/auth-file.ts";

const SCRAM = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$" +
  "q/G5ypB4U27A3tiHjuwpN9UCC8vIwxiW+Qd8yUtBB3E=:" +
  "bpO9bETCOkNvhxLPfMtX4n4gR1lbAKRW0iNkgqmO5bQ=";

test("each kind of secret, doubled quotes, comments and bad lines", () => {
  const { entries, badLines } = parseAuthFile([
    "; a comment",
    `"alice" "${SCRAM}"`,
    `"bob"   "md5${"0123456789abcdef".repeat(2)}" "extra field"`,
    `"say ""hi""" "pass ""word"""`,
    "",
    `"unterminated "x"`,
    `"lonely"`,
    `"eve" "md5 not a hash"`,
  ].join("\n"));
  expect(entries.get("alice")).toEqual({ kind: "scram", secret: SCRAM });
  expect(entries.get("bob")).toEqual({ kind: "md5", secret: `md5${"0123456789abcdef".repeat(2)}` });
  expect(entries.get('say "hi"')).toEqual({ kind: "plain", password: 'pass "word"' });
  expect(entries.get("eve")).toEqual({ kind: "plain", password: "md5 not a hash" });
  expect(badLines).toEqual([6, 7]);
  expect(entries.size).toBe(4);
});
