/**
 * Huge COPY data through psql in bounded server memory. A 48 MB
 * `\copy … from` is fed to the engine as it arrives (the client is held
 * back while the engine is slower), and comes back byte for byte through
 * `\copy … to`; the server's RSS stays within 256 MiB of where it was with
 * the psql connected. A client that stalls mid-COPY while others wait is
 * ended after pgts.engine_hold_timeout (2 s), as an idle holder is, and its
 * COPY rolled back. A client that reads a 200 MB result not at all holds the
 * engine's answer back (its socket is full), not the server's memory, and
 * once it leaves the next client is served. Under the default adapter and
 * subprocess.
 * (The figures at 1 GB and 500 MB are scripts/bench/copy.ts's.)
 */

import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  cstr,
  errorFields,
  message,
  pgClient,
  pgEnv,
  psql,
  RawConnection,
  sharedServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";
import { processUsage } from "../../helpers/fuzz.ts";
import { passAdapters, PG_BIN, type PgtsServer } from "../../helpers/pgts.ts";

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

/**
 * A psql connected and waiting on its standard input: `finish` gives it its
 * last command and \q, and returns what it printed after connecting.
 */
class PsqlSession {
  private constructor(
    private readonly proc: Bun.Subprocess<"pipe", "pipe", "pipe">,
    private readonly out: ReadableStreamDefaultReader<Uint8Array>,
    private readonly timer: ReturnType<typeof setTimeout>,
  ) {}

  static async open(server: PgtsServer): Promise<PsqlSession> {
    const proc = Bun.spawn([`${PG_BIN}/psql`, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
      env: pgEnv(server),
    });
    const timer = setTimeout(() => proc.kill("SIGKILL"), 120_000);
    const session = new PsqlSession(proc, proc.stdout.getReader(), timer);
    proc.stdin.write("select 'connected';\n");
    proc.stdin.flush();
    let seen = "";
    const decoder = new TextDecoder();
    while (!seen.includes("connected\n")) {
      const { value, done } = await session.out.read();
      if (done) {
        throw new Error(
          `psql ended before it connected: ${await new Response(proc.stderr).text()}`,
        );
      }
      seen += decoder.decode(value, { stream: true });
    }
    return session;
  }

  async finish(command: string): Promise<{ out: string; err: string }> {
    this.proc.stdin.write(`${command}\n\\q\n`);
    this.proc.stdin.end();
    const chunks: Uint8Array[] = [];
    for (;;) {
      const { value, done } = await this.out.read();
      if (done) break;
      chunks.push(value);
    }
    const err = await new Response(this.proc.stderr).text();
    await this.proc.exited;
    clearTimeout(this.timer);
    return { out: await new Blob(chunks).text(), err };
  }
}

for (const adapter of passAdapters([undefined, "subprocess"] as const)) {
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
        // Each \copy's session is connected before the server is measured: under
        // --adapter subprocess its backend is a process of its own (~60 MiB
        // under Deno, made for the connection), and that is the connection's
        // cost, not the COPY's.
        const from = await PsqlSession.open(server);
        const idle = processUsage(server.pid).rssMiB;
        const s1 = sampler(server);
        const copied = await from.finish(`\\copy big from '${input}'`);
        const peakIn = s1.stop();
        expect(copied.err).toBe("");
        expect(copied.out.trim()).toBe(`COPY ${ROWS}`);

        const output = join(dir, "out.tsv");
        const to = await PsqlSession.open(server);
        const before = processUsage(server.pid).rssMiB;
        const s2 = sampler(server);
        const back = await to.finish(`\\copy (select * from big order by id) to '${output}'`);
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

    test("a client that does not read a 200 MB result costs the server no more than a few MiB, and leaving frees the engine", async () => {
      const server = shared();
      const raw = await RawConnection.open(server);
      await raw.startup();
      // Measured with the connection's backend running (under subprocess a process of its own).
      const idle = processUsage(server.pid).rssMiB;
      raw.socket.pause();
      raw.send(
        message(
          "Q",
          cstr("copy (select repeat('x', 100) from generate_series(1, 2000000)) to stdout"),
        ),
      );
      const s = sampler(server);
      await Bun.sleep(4000);
      const peak = s.stop();
      // Before the backend passed its full socket back to the engine, the
      // whole result piled up in the server: +236 and +280 MiB in these 4 s.
      expect(peak - idle).toBeLessThan(96);
      raw.socket.destroy();
      const other = await pgClient(server);
      try {
        const r = await other.query("select 1 as one");
        expect(r.rows[0].one).toBe(1);
      } finally {
        await other.end();
      }
    });

    test("a client that stalls mid-COPY while another waits is ended and rolled back", async () => {
      const server = shared();
      const made = await psql(server, ["-c", "create table stalled (x int)"]);
      expect(made.err).toBe("");
      const raw = await RawConnection.open(server);
      await raw.startup();
      raw.send(message("Q", cstr("copy stalled from stdin")));
      expect(await raw.until("G")).not.toBeNull();
      raw.send(message("d", new TextEncoder().encode("1\n2\n")));
      const other = await pgClient(server);
      const t0 = performance.now();
      const r = await other.query("select count(*)::int as n from stalled");
      expect(r.rows[0].n).toBe(0);
      // engine_hold_timeout (2 s) after the waiter came, not its 5 s wait bound.
      expect(performance.now() - t0).toBeLessThan(4500);
      const fatal = await raw.until("E");
      expect(fatal).not.toBeNull();
      expect(errorFields(fatal!.body)["C"]).toBe("25P03");
      await raw.closed;
    });
  });
}
