/**
 * Random and mutated frontend messages in every state a client can be in
 * (startup, authentication, idle, an extended-query batch, COPY FROM
 * STDIN), a few hundred of them with a fixed seed (scripts/fuzz.ts runs the
 * same fuzzer at any size). After every round of connections, all gone, a
 * fresh client is served; at the end it is served within a second, and the
 * server's processes, fds and memory are back near where they started.
 */

import { describe, expect, test } from "bun:test";
import {
  FUZZ_HBA,
  healthCheck,
  prepareFuzzTarget,
  processUsage,
  runFuzz,
} from "../../helpers/fuzz.ts";
import { sleep, startSqlServer, useSqlServers, waitFor } from "../../helpers/pgts-sql.ts";

useSqlServers({ timeoutMs: 180_000 });

const MESSAGES = Number(process.env.PGTS_FUZZ_MESSAGES ?? 400);
const SEED = Number(process.env.PGTS_FUZZ_SEED ?? 13);

for (const adapter of [undefined, "subprocess"] as const) {
  describe(`${adapter ?? "default"} adapter`, () => {
    test(`${MESSAGES} fuzzed messages (seed ${SEED}) leave the server serving at once`, async () => {
      const server = await startSqlServer({
        perTest: true,
        ...(adapter !== undefined ? { adapter } : {}),
        hba: FUZZ_HBA,
        settings: { authentication_timeout: "2s" },
      });
      const target = {
        host: server.host,
        port: server.port,
        user: "postgres",
        passwordUser: "fuzz_pw",
      };
      await prepareFuzzTarget(target.host, target.port);
      for (let i = 0; i < 3; i++) await healthCheck(target);
      await sleep(1000);
      const before = processUsage(server.pid);
      const result = await runFuzz(target, {
        seed: SEED,
        messages: MESSAGES,
        bigBytes: 256 * 1024,
      });
      expect(result.sent).toBeGreaterThanOrEqual(MESSAGES);
      for (const state of ["startup", "authentication", "idle", "extended", "copy"] as const) {
        expect(result.byState[state]).toBeGreaterThan(0);
      }
      // Every round's check was served (a held engine answers 55P03).
      expect(result.rounds.filter((r) => r.healthError !== null)).toEqual([]);
      expect(server.exitCode).toBeNull();
      // Half-open startups are gone after authentication_timeout.
      await sleep(3000);
      expect(await healthCheck(target)).toBeLessThan(1000);
      const after = await waitFor("usage to come back near the baseline", () => {
        const u = processUsage(server.pid);
        return u.processes <= before.processes + 1 && u.fds <= before.fds + 8 &&
          u.rssMiB <= before.rssMiB * 1.25 + 64 && u;
      }, {
        timeoutMs: 10_000,
        detail: () => JSON.stringify({ before, now: processUsage(server.pid) }),
      });
      console.log(
        `${
          adapter ?? "default"
        }: ${result.sent} messages, ${result.connections} connections, ${result.rounds.length} rounds; usage ${
          JSON.stringify(before)
        } -> ${JSON.stringify(after)}`,
      );
    });
  });
}
