/**
 * A backend main for postmaster tests, so that they run without the real
 * backend (src/core/backend) and an engine behind it: it reads the startup
 * packet (ConnectionReader), takes one of max_connections from the postmaster
 * (FATAL 53300 when none is left), answers AuthenticationOk and ReadyForQuery, and
 * echoes each simple query back as a one-row result. A few queries drive
 * the tests:
 *
 * - `crash`: throws (a crash under the in-process launcher);
 * - `claim`: asks the postmaster for a connection again ("ok" for one it holds);
 * - `pid`: the backend's pid;
 * - `start_worker`: registers a dynamic background worker from this backend
 *   and answers with "<status> <pid>" once it has started.
 *
 * SIGTERM and SIGQUIT are handled by installBackendSignalHandlers, so clients
 * read PostgreSQL's FATAL/WARNING texts.
 */

import { BGW_NEVER_RESTART, BGWORKER_SHMEM_ACCESS } from "../../src/core/postmaster/bgworker.ts";
import { registerDynamicBackgroundWorker } from "../../src/core/postmaster/bgworker_main.ts";
import { installBackendSignalHandlers } from "../../src/core/postmaster/interrupt.ts";
import type { ChildMain } from "../../src/core/adapter.ts";
import { PostmasterLink } from "../../src/core/postmaster/pmsignal.ts";
import { backendClient } from "../../src/core/postmaster/firstpacket.ts";
import { ConnectionReader } from "../../src/core/protocol/connreader.ts";
import { MessageWriter } from "../../src/core/protocol/writer.ts";
import { FE } from "../../src/core/protocol/constants.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function encodeMessage(type: string, body: Uint8Array): Uint8Array {
  return MessageWriter.encode((w) => w.begin(type.charCodeAt(0)).bytes(body).end());
}

function int32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, n);
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function rowDescription(name: string): Uint8Array {
  const field = concat(
    enc.encode(name + "\0"),
    int32(0),
    Uint8Array.of(0, 0),
    int32(25),
    Uint8Array.of(0xff, 0xff),
    int32(-1),
    Uint8Array.of(0, 0),
  );
  return encodeMessage("T", concat(Uint8Array.of(0, 1), field));
}

function dataRow(value: string): Uint8Array {
  const v = enc.encode(value);
  return encodeMessage("D", concat(Uint8Array.of(0, 1), int32(v.length), v));
}

const readyForQuery = encodeMessage("Z", enc.encode("I"));

export const WORKERS_MODULE = new URL("./test_children.ts", import.meta.url).href;

export const testBackendMain: ChildMain = async (env) => {
  const link = new PostmasterLink(env);
  const client = backendClient(env);
  if (client === null) throw new TypeError("testBackendMain needs a client");
  const signals = installBackendSignalHandlers(env, link);
  env.onSignal("SIGHUP", () => {});
  env.onSignal("SIGINT", () => {});
  env.onSignal("SIGUSR1", () => {});
  const reader = new ConnectionReader(client);

  const serve = async (): Promise<number> => {
    const packet = await reader.readStartupPacket({ timeoutMs: 60_000 });
    if (packet.type !== "startup") return 0;
    if ((await link.claimConnection(true)) !== "ok") {
      const fields = "SFATAL\0C53300\0Msorry, too many clients already\0\0";
      client.write(encodeMessage("E", enc.encode(fields)));
      client.end();
      return 1;
    }
    client.write(encodeMessage("R", int32(0)));
    client.write(encodeMessage("K", concat(int32(env.pid), int32(12345))));
    client.write(readyForQuery);
    for (;;) {
      const m = await reader.readMessage(env.abort);
      if (m === null || m.type === FE.Terminate) return 0;
      if (m.type !== FE.Query) continue;
      const sql = dec.decode(m.body.subarray(0, m.body.length - 1));
      let value = sql;
      if (sql === "crash") throw new Error("test backend crashed on purpose");
      if (sql === "pid") value = String(env.pid);
      if (sql === "claim") value = await link.claimConnection(true);
      if (sql === "start_worker") {
        const handle = await registerDynamicBackgroundWorker(link, {
          name: "dynamic from backend",
          entry: { module: WORKERS_MODULE, export: "sleepingWorker" },
          flags: BGWORKER_SHMEM_ACCESS,
          startTime: "BgWorkerStart_RecoveryFinished",
          restartTime: BGW_NEVER_RESTART,
        });
        const s = handle === null ? null : await handle.waitForStartup();
        value = s === null ? "none" : `${s.status} ${s.pid}`;
      }
      client.write(rowDescription("echo"));
      client.write(dataRow(value));
      client.write(encodeMessage("C", enc.encode("SELECT 1\0")));
      client.write(readyForQuery);
    }
  };
  return await Promise.race([serve(), signals.exitCode]);
};
