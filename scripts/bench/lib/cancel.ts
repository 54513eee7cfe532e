/**
 * Cancel latency of one pgts server: N CancelRequests, each of a CPU-bound
 * statement that has run 100–150 ms, timed from the request's send to the
 * client's 57014 (scripts/bench/cancel-latency.ts, compare.ts).
 */

import { connect } from "node:net";
import pg from "pg";
import { startPgts } from "./servers.ts";

export interface CancelLatency {
  readonly spec: string;
  /** Cancels that ended their statement with 57014 within 10 s. */
  readonly n: number;
  /**
   * Cancels that did not (the statement was stopped by a second request;
   * when not even that stopped it, every cancel left counts as lost).
   */
  readonly lost: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

const STATEMENTS = [
  "do $$ declare i bigint := 0; begin loop i := i + 1; end loop; end $$",
  "select count(*) from generate_series(1, 1e9)",
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

export async function measureCancelLatency(spec: string, cancels: number): Promise<CancelLatency> {
  const server = await startPgts(spec);
  const config = { host: server.host, port: server.port, user: "postgres", database: "postgres" };
  const client = new pg.Client(config);
  await client.connect();
  const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
  const ms: number[] = [];
  let lost = 0;
  try {
    for (let i = 0; i < cancels; i++) {
      let done = 0;
      const running = client.query(STATEMENTS[i % STATEMENTS.length]!).then(
        () => "finished",
        (e: { code?: string }) => e.code ?? "error",
      ).finally(() => (done = performance.now()));
      await sleep(100 + Math.random() * 50);
      const sent = performance.now();
      // node-postgres's own cancel: a new connection with the CancelRequest.
      await cancelRequest(config, processID, secretKey).catch(() => {});
      const outcome = await Promise.race([running, sleep(10_000).then(() => "timeout")]);
      if (outcome === "57014") ms.push(done - sent);
      else {
        lost++;
        // Stop what still runs before the next round (a second request).
        await cancelRequest(config, processID, secretKey).catch(() => {});
        const again = await Promise.race([running, sleep(10_000).then(() => "timeout")]);
        // Nothing reaches the statement (the inline placement): the rest is lost too.
        if (again === "timeout") {
          lost += cancels - i - 1;
          break;
        }
      }
    }
  } finally {
    // A server whose thread computes never answers the Terminate; stop() kills it.
    await Promise.race([client.end().catch(() => {}), sleep(2_000)]);
    await server.stop();
  }
  const sorted = [...ms].sort((a, b) => a - b);
  return {
    spec,
    n: ms.length,
    lost,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? NaN,
  };
}

/**
 * Sends a CancelRequest on a connection of its own and waits for the server to
 * close it, 10 s at most: a server whose only thread computes (the inline
 * placement) never accepts the connection, and the caller counts the cancel
 * as lost instead of waiting for ever.
 */
async function cancelRequest(
  config: { host: string; port: number },
  pid: number,
  key: number,
): Promise<void> {
  const packet = new Uint8Array(16);
  const dv = new DataView(packet.buffer);
  dv.setInt32(0, 16);
  dv.setInt32(4, 80877102);
  dv.setInt32(8, pid);
  dv.setInt32(12, key);
  await new Promise<void>((resolve, reject) => {
    const sock = connect(config.port, config.host, () => sock.end(packet));
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error("the server did not close the CancelRequest's connection within 10 s"));
    }, 10_000);
    sock.on("close", () => {
      clearTimeout(timer);
      resolve();
    });
    sock.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.resume();
  });
}
