/**
 * The engine's Worker polls for the next statement before it sleeps
 * (src/engines/pglite/channel.ts, pgts.engine_spin_time): a statement after a
 * sleep runs slower (cold caches), but a poll that never catches anything
 * takes CPU the other threads need (a connection storm's accepting thread).
 * The window adapts to the gaps the Worker sees; these are its rules, and
 * the channel still delivers what arrives after the poll gave up. After an
 * answer inside a transaction block a window of its own, up to
 * BLOCK_SPIN_FACTOR times longer, waits for the session's next statement.
 */

import { expect, test } from "bun:test";
import {
  BLOCK_SPIN_FACTOR,
  ChannelRequester,
  ChannelServer,
  endsInBlock,
  spinWindowAfter,
} from "../../../src/engines/pglite/channel.ts";

const SPIN = 0.2; // ms: the default 200 µs

test("gaps longer than the poll stop the polling within a few waits", () => {
  let w = SPIN;
  const seen: number[] = [];
  for (let i = 0; i < 6; i++) {
    w = spinWindowAfter(w, SPIN, 5); // 5 ms gaps: no poll would catch them
    seen.push(w);
  }
  expect(seen.slice(0, 3)).toEqual([SPIN / 2, SPIN / 4, SPIN / 8]);
  expect(w).toBe(0);
});

test("short gaps bring the poll back, never past engine_spin_time", () => {
  let w = 0;
  w = spinWindowAfter(w, SPIN, 0.1); // a 100 µs gap a 200 µs poll would have caught
  expect(w).toBe(SPIN / 8);
  for (let i = 0; i < 10; i++) w = spinWindowAfter(w, SPIN, 0.15);
  expect(w).toBe(SPIN);
});

test("a request that comes after the poll gave up is still taken", async () => {
  const requester = new ChannelRequester();
  const server = new ChannelServer(requester.buffer, 200);
  const bytes = new TextEncoder().encode("Q\0\0\0\rselect 1\0");
  for (let seq = 1; seq <= 3; seq++) {
    const next = server.next();
    expect(next).toBeInstanceOf(Promise); // nothing there yet: it polls, then waits
    setTimeout(() => requester.trySend(seq, bytes, { runAs: 10, pid: 7, timeoutMs: 0 }, false), 5);
    const r = await next;
    expect(r.seq).toBe(seq);
    expect(Array.from(r.bytes)).toEqual(Array.from(bytes));
    expect(r.options).toEqual({ runAs: 10, pid: 7, timeoutMs: 0 });
  }
});

test("an answer that leaves its session inside a transaction block is told from one that ends idle", () => {
  const rfq = (status: string) => Uint8Array.of(0x5a, 0, 0, 0, 5, status.charCodeAt(0));
  const complete = new TextEncoder().encode("C\0\0\0\x0dUPDATE 1\0");
  expect(endsInBlock([complete, rfq("T")])).toBe(true);
  expect(endsInBlock([complete, rfq("E")])).toBe(true);
  expect(endsInBlock([complete, rfq("I")])).toBe(false);
  // The last non-empty part decides; an answer cut before its ReadyForQuery is not in a block.
  expect(endsInBlock([rfq("T"), new Uint8Array(0)])).toBe(true);
  expect(endsInBlock([rfq("T"), complete])).toBe(false);
  expect(endsInBlock([])).toBe(false);
});

test("inside a transaction block the poll may grow to BLOCK_SPIN_FACTOR times engine_spin_time, by the same rules", () => {
  const cap = SPIN * BLOCK_SPIN_FACTOR;
  // A 600 µs round trip to the client: past engine_spin_time, within the block's cap.
  let w = 0;
  for (let i = 0; i < 10; i++) w = spinWindowAfter(w, cap, 0.6);
  expect(w).toBe(cap);
  // A client that thinks for 5 ms between its statements: no polling for it.
  for (let i = 0; i < 8; i++) w = spinWindowAfter(w, cap, 5);
  expect(w).toBe(0);
});

test("a request that comes while the Worker waits inside a transaction block is taken", async () => {
  const requester = new ChannelRequester();
  const server = new ChannelServer(requester.buffer, 200);
  const bytes = new TextEncoder().encode("Q\0\0\0\x11update t set\0");
  for (const [seq, delay] of [[1, 0], [2, 5], [3, 0]] as const) {
    const next = server.next(true);
    expect(next).toBeInstanceOf(Promise);
    setTimeout(
      () => requester.trySend(seq, bytes, { runAs: 10, pid: 7, timeoutMs: 0 }, false),
      delay,
    );
    const r = await next;
    expect(r.seq).toBe(seq);
    expect(Array.from(r.bytes)).toEqual(Array.from(bytes));
  }
});
