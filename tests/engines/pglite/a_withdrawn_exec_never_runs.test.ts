/**
 * An exec that waits in the channel behind another (the pipeline,
 * src/engines/pglite/channel.ts) may be taken back by the executor until the
 * engine's Worker takes it to run: a cancel that comes meanwhile then stops
 * it before it starts. One compareExchange on each side: exactly one of
 * them wins, whatever the order, and a slot written again starts unclaimed.
 */

import { expect, test } from "bun:test";
import { ChannelRequester, ChannelServer } from "../../../src/engines/pglite/channel.ts";

const bytes = new TextEncoder().encode("Q\0\0\0\rselect 1\0");
const options = { runAs: 10, pid: 7, timeoutMs: 0 };

test("a withdrawn request is not claimed, and a claimed one cannot be withdrawn", () => {
  const requester = new ChannelRequester();
  const server = new ChannelServer(requester.buffer, 0);

  const first = requester.trySend(1, bytes, options, true);
  expect(requester.withdraw(first)).toBe(true);
  expect(requester.withdraw(first)).toBe(false); // once
  const taken = server.next();
  expect(taken).not.toBeInstanceOf(Promise);
  const r = taken as Exclude<typeof taken, Promise<unknown>>;
  expect(r.seq).toBe(1);
  expect(r.conditional).toBe(true);
  expect(server.claim(r.slot)).toBe(false);

  const second = requester.trySend(2, bytes, options, true);
  expect(second).not.toBe(first);
  const r2 = server.next() as Exclude<ReturnType<typeof server.next>, Promise<unknown>>;
  expect(server.claim(r2.slot)).toBe(true);
  expect(requester.withdraw(second)).toBe(false);

  // The first slot, written again, starts unclaimed.
  const third = requester.trySend(3, bytes, options, true);
  expect(third).toBe(first);
  const r3 = server.next() as Exclude<ReturnType<typeof server.next>, Promise<unknown>>;
  expect(r3.seq).toBe(3);
  expect(server.claim(r3.slot)).toBe(true);
});
