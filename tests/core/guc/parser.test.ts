import { describe, expect, test } from "bun:test";
import { parseConfigFile, unquote } from "../../../src/core/guc/parser.ts";
import { memoryReader } from "./memreader.ts";

const CONF = "/data/postgresql.conf";

function parse(text: string, extra: Record<string, string> = {}) {
  return parseConfigFile(CONF, memoryReader({ [CONF]: text, ...extra }));
}

describe("postgresql.conf syntax", () => {
  test("name = value and name value both set a parameter, comments are ignored", () => {
    const { items, errors } = parse(
      "# a comment\nport = 5433   # trailing comment\n\nmax_connections 20\n  listen_addresses='*'\n",
    );
    expect(errors).toEqual([]);
    expect(items.map((i) => [i.name, i.value, i.line])).toEqual([
      ["port", "5433", 2],
      ["max_connections", "20", 4],
      ["listen_addresses", "*", 5],
    ]);
    expect(items[0]!.file).toBe(CONF);
  });

  test("quoted strings keep # and resolve '' and backslash escapes", () => {
    const { items } = parse(
      "log_line_prefix = '%m # [%p] '\ncluster_name = 'it''s'\napplication_name = 'a\\tb\\\\c\\101'\n",
    );
    expect(items.map((i) => i.value)).toEqual(["%m # [%p] ", "it's", "a\tb\\cA"]);
    expect(unquote("'x\\'y'")).toBe("x'y");
  });

  test("numbers with units, reals, unquoted words with dashes and qualified names are values", () => {
    const { items, errors } = parse(
      "shared_buffers = 128MB\nauthentication_timeout 1min\nx.y = 0.5\npassword_encryption = scram-sha-256\n",
    );
    expect(errors).toEqual([]);
    expect(items.map((i) => i.value)).toEqual(["128MB", "1min", "0.5", "scram-sha-256"]);
    expect(items[2]!.name).toBe("x.y");
  });

  test("a syntax error names the file and line and parsing continues", () => {
    const { items, errors } = parse("port = \nport = 1 2\n= 3\nmax_connections = 7\n");
    expect(errors.map((e) => e.message)).toEqual([
      `syntax error in file "${CONF}" line 1, near end of line`,
      `syntax error in file "${CONF}" line 2, near token "2"`,
      `syntax error in file "${CONF}" line 3, near token "="`,
    ]);
    expect(errors[0]!.code).toBe("42601");
    expect(items.map((i) => i.name)).toEqual(["max_connections"]);
  });

  test("an unquoted path is a syntax error, as in PostgreSQL", () => {
    const { errors } = parse("unix_socket_directories = /tmp\n");
    expect(errors[0]!.message).toBe(`syntax error in file "${CONF}" line 1, near token "/"`);
  });

  test("include reads a file relative to the including file, in place", () => {
    const { items, errors } = parse("port = 1\ninclude 'conf.d/extra.conf'\nport = 3\n", {
      "/data/conf.d/extra.conf": "port = 2\n",
    });
    expect(errors).toEqual([]);
    expect(items.map((i) => [i.value, i.file, i.line])).toEqual([
      ["1", CONF, 1],
      ["2", "/data/conf.d/extra.conf", 1],
      ["3", CONF, 3],
    ]);
  });

  test("a missing include is an error, a missing include_if_exists is skipped", () => {
    expect(parse("include 'nope.conf'\n").errors[0]!.message).toBe(
      'could not open configuration file "/data/nope.conf": No such file or directory',
    );
    const r = parse("include_if_exists 'nope.conf'\nport = 1\n");
    expect(r.errors).toEqual([]);
    expect(r.items).toHaveLength(1);
  });

  test("include_dir reads *.conf files in name order and skips hidden and other files", () => {
    const { items, errors } = parse("include_dir 'conf.d'\n", {
      "/data/conf.d/20-b.conf": "port = 2\n",
      "/data/conf.d/10-a.conf": "port = 1\n",
      "/data/conf.d/.hidden.conf": "port = 9\n",
      "/data/conf.d/notes.txt": "port = 8\n",
    });
    expect(errors).toEqual([]);
    expect(items.map((i) => i.value)).toEqual(["1", "2"]);
  });

  test("an include loop stops at the nesting limit", () => {
    const { errors } = parse("include 'postgresql.conf'\n");
    expect(errors[0]!.message).toBe(
      `could not open configuration file "${CONF}": maximum nesting depth exceeded`,
    );
  });
});
