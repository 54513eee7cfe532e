/**
 * Bytes no client library sends, hand-built: garbage before the startup
 * packet, bad length words, oversized messages, unknown message types,
 * broken startup packets, and a client that sends nothing. Each gets what
 * PostgreSQL gives it (a FATAL with its SQLSTATE and text, or — for
 * framing errors PostgreSQL reports with COMMERROR — a close without a
 * word and a LOG line), only that connection ends, and the server, and a
 * session that was open all along, keep serving.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type pg from "pg";
import {
  concat,
  cstr,
  errorFields,
  message,
  pgClient,
  RawConnection,
  sharedServer,
  startupPacket,
  useSqlServers,
  waitFor,
} from "../../helpers/pgts-sql.ts";

useSqlServers();
const server = sharedServer({ settings: { authentication_timeout: "1s" } });

let bystander: pg.Client & { asyncErrors: Error[] };
beforeAll(async () => {
  bystander = await pgClient(server());
  await bystander.query("create table survivors (n int)");
});

/** The server still serves new and existing connections. */
async function stillServing(): Promise<void> {
  await bystander.query("insert into survivors values (1)");
  const fresh = await pgClient(server());
  expect((await fresh.query("select count(*)::int as n from survivors")).rows[0].n).toBeGreaterThan(
    0,
  );
  await fresh.end();
  expect(bystander.asyncErrors).toEqual([]);
}

afterAll(async () => {
  await bystander?.end().catch(() => {});
});

/** Sends `bytes` on a new connection (after startup when `afterStartup`); all messages until close. */
async function exchange(bytes: Uint8Array, afterStartup = false) {
  const raw = await RawConnection.open(server());
  if (afterStartup) await raw.startup();
  raw.send(bytes);
  const messages = await raw.drain();
  return messages.map((m) => ({ type: m.type, ...(m.type === "E" ? errorFields(m.body) : {}) }));
}

async function expectLog(text: string, from: number): Promise<void> {
  await waitFor(`the server log to say ${text}`, () => server().log.slice(from).includes(text), {
    detail: () => server().log.slice(from),
  });
}

describe("before the startup packet", () => {
  test("an HTTP request instead of a startup packet is closed with only a LOG line", async () => {
    const from = server().log.length;
    const got = await exchange(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    expect(got).toEqual([]);
    await expectLog("invalid length of startup packet", from);
    await stillServing();
  });

  test("a startup packet length below 8 is closed with only a LOG line", async () => {
    const from = server().log.length;
    expect(await exchange(new Uint8Array([0, 0, 0, 4, 0, 3, 0, 0]))).toEqual([]);
    await expectLog("invalid length of startup packet", from);
    await stillServing();
  });

  test("an unsupported protocol version gets FATAL 0A000", async () => {
    const got = await exchange(startupPacket({ user: "postgres" }, 0x0002_0000));
    expect(got).toEqual([
      expect.objectContaining({
        type: "E",
        S: "FATAL",
        C: "0A000",
        M: "unsupported frontend protocol 2.0: server supports 3.0 to 3.0",
      }),
    ]);
    await stillServing();
  });

  test("a startup packet without its terminator gets FATAL 08P01", async () => {
    const body = concat(cstr("user"), cstr("postgres"));
    const packet = new Uint8Array(8 + body.length);
    new DataView(packet.buffer).setInt32(0, packet.length);
    new DataView(packet.buffer).setInt32(4, 0x0003_0000);
    packet.set(body, 8);
    packet[packet.length - 1] = 0x41; // the last NUL replaced
    const got = await exchange(packet);
    expect(got).toEqual([
      expect.objectContaining({
        S: "FATAL",
        C: "08P01",
        M: "invalid startup packet layout: expected terminator as last byte",
      }),
    ]);
    await stillServing();
  });

  test("a startup packet without a user gets FATAL 28000", async () => {
    const got = await exchange(startupPacket({ database: "postgres" }));
    expect(got).toEqual([
      expect.objectContaining({
        S: "FATAL",
        C: "28000",
        M: "no PostgreSQL user name specified in startup packet",
      }),
    ]);
  });

  test("a client that sends nothing is dropped after authentication_timeout", async () => {
    const from = server().log.length;
    const raw = await RawConnection.open(server());
    const t0 = Date.now();
    expect(await raw.drain(10_000)).toEqual([]);
    const waited = Date.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(900);
    expect(waited).toBeLessThan(5_000);
    await expectLog("canceling authentication due to timeout", from);
    await stillServing();
  });

  test("a client that stops halfway through its startup packet is dropped too", async () => {
    const raw = await RawConnection.open(server());
    raw.send(startupPacket().subarray(0, 10));
    const t0 = Date.now();
    expect(await raw.drain(10_000)).toEqual([]);
    expect(Date.now() - t0).toBeLessThan(5_000);
    await stillServing();
  });
});

describe("after startup", () => {
  test("an unknown message type gets FATAL 08P01 invalid frontend message type", async () => {
    const got = await exchange(message("x", new Uint8Array([1, 2, 3])), true);
    expect(got).toEqual([
      expect.objectContaining({ S: "FATAL", C: "08P01", M: "invalid frontend message type 120" }),
    ]);
    await stillServing();
  });

  test("a message length below 4 closes the connection with only a LOG line", async () => {
    const from = server().log.length;
    const bad = new Uint8Array([0x51, 0, 0, 0, 2]);
    expect(await exchange(bad, true)).toEqual([]);
    await expectLog("invalid message length", from);
    await stillServing();
  });

  test("an oversized short message (Sync of 20000 bytes) closes the connection", async () => {
    const from = server().log.length;
    const big = new Uint8Array(5);
    big[0] = 0x53;
    new DataView(big.buffer).setInt32(1, 20_000);
    expect(await exchange(big, true)).toEqual([]);
    await expectLog("invalid message length", from);
    await stillServing();
  });

  test("a Query claiming more than 1 GB closes the connection", async () => {
    const big = new Uint8Array(5);
    big[0] = 0x51;
    new DataView(big.buffer).setUint32(1, 0x7fff_fff0);
    expect(await exchange(big, true)).toEqual([]);
    await stillServing();
  });

  test("a Query without its NUL terminator is an ERROR 08P01 and the session goes on", async () => {
    const raw = await RawConnection.open(server());
    await raw.startup();
    raw.send(message("Q", new TextEncoder().encode("select 1")));
    const e = await raw.until("E");
    expect(e).not.toBeNull();
    const f = errorFields(e!.body);
    expect(f.C).toBe("08P01");
    expect(f.M).toBe("invalid string in message");
    const z = await raw.until("Z");
    expect(z).not.toBeNull();
    raw.send(message("Q", cstr("select 'ok'")));
    const row = await raw.until("D");
    expect(new TextDecoder().decode(row!.body)).toContain("ok");
    raw.close();
    await stillServing();
  });

  test("a connection dropped in the middle of a message leaves the server serving", async () => {
    const raw = await RawConnection.open(server());
    await raw.startup();
    const q = message("Q", cstr("select 1"));
    raw.send(q.subarray(0, 7));
    raw.close();
    await stillServing();
  });
});
