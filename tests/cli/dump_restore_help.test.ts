import { describe, expect, test } from "bun:test";
import { pgts } from "./helpers.ts";

describe("pgts dump and pgts restore: help and usage", () => {
  test("the top-level help lists both verbs", async () => {
    const r = await pgts(["--help"]);
    expect(r.out).toContain("pgts dump ");
    expect(r.out).toContain("pgts restore ");
  });

  test("each verb's --help documents all of its options", async () => {
    const want: Record<string, string[]> = {
      dump: [
        "--file",
        "--format",
        "--verbose",
        "--schema-only",
        "--data-only",
        "--table",
        "--schema",
        "--clean",
        "--if-exists",
        "--no-owner",
        "--no-privileges",
        "--disable-triggers",
        "--rows-per-insert",
        "--dbname",
        "--host",
        "--port",
        "--username",
        "--pgdata",
        "PGPASSWORD",
        "--help",
      ],
      restore: [
        "--file",
        "--single-transaction",
        "--verbose",
        "--dbname",
        "--host",
        "--port",
        "--username",
        "--pgdata",
        "PGPASSWORD",
        "--help",
      ],
    };
    for (const [verb, options] of Object.entries(want)) {
      const r = await pgts([verb, "--help"]);
      expect(r.code).toBe(0);
      expect(r.out).toContain(`Usage:\n  pgts ${verb}`);
      for (const o of options) expect(r.out).toContain(o);
    }
  });

  test("bad options and impossible combinations are errors, exit 1", async () => {
    const bogus = await pgts(["dump", "--bogus"]);
    expect(bogus.code).toBe(1);
    expect(bogus.err).toContain("pgts dump: unrecognized option '--bogus'");
    const format = await pgts(["dump", "-F", "x"]);
    expect(format.err).toBe('pgts dump: error: invalid output format "x" specified (p or c)\n');
    const rows = await pgts(["dump", "--rows-per-insert", "0"]);
    expect(rows.err).toContain("--rows-per-insert must be in range 1..2147483647");
    const both = await pgts(["dump", "-s", "-a"]);
    expect(both.err).toContain("-s/--schema-only and -a/--data-only cannot be used together");
    const two = await pgts(["restore", "a.sql", "b.sql"]);
    expect(two.code).toBe(1);
    expect(two.err).toContain('too many command-line arguments (first is "b.sql")');
  });

  test("without a running server on -D the verbs say so", async () => {
    const r = await pgts(["dump", "-D", "/nonexistent/pgts-data"]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      'pgts dump: error: no server running on data directory "/nonexistent/pgts-data"',
    );
    const refused = await pgts(["restore", "-h", "127.0.0.1", "-p", "1", "/dev/null"]);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('connection to server at "127.0.0.1", port 1 failed');
  });
});
