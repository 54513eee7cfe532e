/**
 * The pieces of pgts dump and pgts restore that read protocol bytes and
 * SQL scripts: what the WASM libpq is owed, and how a script is split.
 */

import { describe, expect, test } from "bun:test";
import { OwedAnswers } from "../../src/cli/dump/wire.ts";
import { isCopyFromStdin, ScriptReader, splitLines } from "../../src/cli/restore/script.ts";

function message(type: string, body: number[] = []): number[] {
  const len = body.length + 4;
  return [
    type.charCodeAt(0),
    len >>> 24,
    (len >>> 16) & 255,
    (len >>> 8) & 255,
    len & 255,
    ...body,
  ];
}

const int32 = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];

describe("what the WASM libpq is owed", () => {
  test("startup, a password exchange and queries, split anywhere", () => {
    const owed = new OwedAnswers();
    expect(owed.waiting).toBe(false);
    owed.sent(new Uint8Array([0, 0, 0, 8, 0, 3, 0, 0]));
    expect(owed.waiting).toBe(true);
    // AuthenticationMD5Password, one byte at a time: libpq must answer before more comes.
    for (const b of message("R", [...int32(5), 1, 2, 3, 4])) owed.received(new Uint8Array([b]));
    expect(owed.waiting).toBe(false);
    owed.sent(new Uint8Array(message("p", [65, 0])));
    expect(owed.waiting).toBe(true);
    owed.received(new Uint8Array([...message("R", int32(0)), ...message("S", [97, 0, 98, 0])]));
    expect(owed.waiting).toBe(true);
    owed.received(new Uint8Array(message("Z", [73])));
    expect(owed.waiting).toBe(false);
    // Two queries in one write, answered in two chunks cut mid-message.
    owed.sent(new Uint8Array([...message("Q", [49, 0]), ...message("Q", [50, 0])]));
    const answers = [...message("C", [83, 0]), ...message("Z", [73]), ...message("Z", [73])];
    owed.received(new Uint8Array(answers.slice(0, 9)));
    expect(owed.waiting).toBe(true);
    owed.received(new Uint8Array(answers.slice(9, -1)));
    expect(owed.waiting).toBe(true);
    owed.received(new Uint8Array(answers.slice(-1)));
    expect(owed.waiting).toBe(false);
    // Parse+Bind+Execute are owed nothing until Sync; a Terminate never.
    owed.sent(new Uint8Array([...message("P", [0, 0, 0, 0]), ...message("E", [0, 0, 0, 0, 0])]));
    expect(owed.waiting).toBe(false);
    owed.sent(new Uint8Array(message("S")));
    expect(owed.waiting).toBe(true);
    owed.received(new Uint8Array([...message("1"), ...message("Z", [73])]));
    owed.sent(new Uint8Array(message("X")));
    expect(owed.waiting).toBe(false);
  });
});

async function* from(text: string) {
  yield new TextEncoder().encode(text);
}

async function items(text: string) {
  const reader = new ScriptReader(splitLines(from(text)));
  const out: unknown[] = [];
  for (;;) {
    const item = await reader.next();
    if (item === null) return out;
    out.push(
      item.kind === "sql" ? [item.line, item.text] : [item.line, `\\${item.command} ${item.args}`],
    );
    if (item.kind === "sql" && isCopyFromStdin(item.text)) {
      const rows: string[] = [];
      for await (const row of reader.copyData()) rows.push(row);
      out.push(rows);
    }
  }
}

describe("how pgts restore splits a script", () => {
  test("semicolons inside quotes, dollar quotes and comments do not end a statement", async () => {
    expect(
      await items(
        [
          "select 'a;b', E'it\\'s;', \"x;y\" from t; select 2;",
          "-- a comment; still a comment",
          "create function f() returns int language sql as $fn$ select 1; $fn$;",
          "/* outer /* nested; */ still; */ select $1, a$b$c;",
          "",
        ].join("\n"),
      ),
    ).toEqual([
      [1, `select 'a;b', E'it\\'s;', "x;y" from t;`],
      [1, "select 2;"],
      [
        3,
        "-- a comment; still a comment\ncreate function f() returns int language sql as $fn$ select 1; $fn$;",
      ],
      [4, "/* outer /* nested; */ still; */ select $1, a$b$c;"],
    ]);
  });

  test("meta-commands between statements, COPY data up to \\., a carriage return kept", async () => {
    expect(
      await items(
        [
          "\\restrict abc",
          "COPY public.t (a, b) FROM stdin;",
          "1\tx\r",
          "2\t\\N",
          "\\.",
          "insert into t values (3, 'line\r",
          "two');",
          "\\unrestrict abc",
        ].join("\n"),
      ),
    ).toEqual([
      [1, "\\restrict abc"],
      [2, "COPY public.t (a, b) FROM stdin;"],
      ["1\tx\r", "2\t\\N"],
      [6, "insert into t values (3, 'line\r\ntwo');"],
      [8, "\\unrestrict abc"],
    ]);
  });

  test("a last statement without a semicolon still runs", async () => {
    expect(await items("select 1;\nselect 2")).toEqual([[1, "select 1;"], [2, "select 2"]]);
  });
});
