/**
 * Huge COPY data through psql in bounded server memory. A 48 MB
 * `\copy … from` is fed to the engine as it arrives (the client is held
 * back while the engine is slower), and comes back byte for byte through
 * `\copy … to`; the server's RSS stays within 256 MiB of where it was. A
 * `COPY … TO STDOUT` to a client that stops reading holds the engine back
 * instead of being buffered: while the client sleeps, the server grows by
 * a small fraction of the result's size. Under the default adapter and subprocess.
 * (The figures at 1 GB and 500 MB are scripts/bench/copy.ts's.)
 */

import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { PG_BIN, psql, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { processUsage } from "../../helpers/fuzz.ts";
import type { PgtsServer } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 180_000 });

const ROWS = 480_000;
/** 100 bytes a row: a 7-digit id, a tab, 91 letters, a newline. */
const ROW = (i: number) =>
  `${String(i).padStart(7, "0")}\t${"copydata".repeat(12)}abcdefghijklmnopqrstuvwxyzab\n`;

/** Samples the server's RSS (MiB, its whole process tree) every 50 ms until stopped. */
function sampler(server: PgtsServer): { stop(): number } {
  let peak = processUsage(server.pid).rssMiB;
  const timer = setInterval(() => {
    peak = Math.max(peak, processUsage(server.pid).rssMiB);
  }, 50);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, processUsage(server.pid).rssMiB);
    },
  };
}

for (const adapter of [undefined, "subprocess"] as const) {
  describe(adapter ?? "default adapter", () => {
    const shared = sharedServer(adapter ? { adapter } : {});
    test("48 MB through \\copy from and back through \\copy to, the server within 256 MiB of idle", async () => {
      const dir = mkdtempSync("/tmp/copy-test-");
      try {
        const input = join(dir, "in.tsv");
        const parts: string[] = [];
        for (let i = 1; i <= ROWS; i++) parts.push(ROW(i));
        const text = parts.join("");
        writeFileSync(input, text);
        const server = shared();
        const made = await psql(server, ["-c", "create table big (id text, pad text)"]);
        expect(made.err).toBe("");
        const idle = processUsage(server.pid).rssMiB;

        const s1 = sampler(server);
        const copied = await psql(server, ["-c", `\\copy big from '${input}'`], {
          timeoutMs: 120_000,
        });
        const peakIn = s1.stop();
        expect(copied.err).toBe("");
        expect(copied.out.trim()).toBe(`COPY ${ROWS}`);

        const output = join(dir, "out.tsv");
        const before = processUsage(server.pid).rssMiB;
        const s2 = sampler(server);
        const back = await psql(server, [
          "-c",
          `\\copy (select * from big order by id) to '${output}'`,
        ], { timeoutMs: 120_000 });
        const peakOut = s2.stop();
        expect(back.err).toBe("");
        const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");
        expect(sha(readFileSync(output))).toBe(sha(text));
        // PostgreSQL 15 needs ~25 MiB for either; before the data was fed
        // as it came, pgts held all of it (and copies) until CopyDone. What
        // remains is the chunks' garbage, which the collector takes back
        // late (~150 MiB here, under load).
        expect(peakIn - idle).toBeLessThan(256);
        expect(peakOut - before).toBeLessThan(256);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test("a COPY TO STDOUT whose client stops reading is held back, not buffered", async () => {
      const server = shared();
      const idle = processUsage(server.pid).rssMiB;
      // 100 MB of result; the reader sleeps 2.5 s before it reads any of it.
      const sql = "copy (select lpad(i::text, 7, '0'), repeat('x', 92) " +
        "from generate_series(1, 1000000) i) to stdout";
      const reader = Bun.spawn([
        "bash",
        "-c",
        `"${PG_BIN}/psql" -X -h "${server.socketDir}" -p ${server.port} -U postgres ` +
        `-c "${sql}" | (sleep 2.5; wc -c)`,
      ], { stdout: "pipe", stderr: "pipe", env: { ...process.env, PGOPTIONS: "" } });
      await Bun.sleep(500);
      const s = sampler(server);
      await Bun.sleep(1500);
      const stalled = s.stop();
      const [out, err] = await Promise.all([
        new Response(reader.stdout).text(),
        new Response(reader.stderr).text(),
        reader.exited,
      ]);
      expect(err).toBe("");
      expect(Number(out.trim())).toBe(1_000_000 * 101);
      // Everything the server holds for the sleeping client: the sockets'
      // buffers and a window of the answer, not the 100 MB.
      expect(stalled - idle).toBeLessThan(100);
    });
  });
}
