/**
 * The engine's Worker polls for the next statement before it sleeps
 * (src/engines/pglite/channel.ts, pgts.engine_spin_time): a statement after a
 * sleep runs slower (cold caches), but a poll that never catches anything
 * takes CPU the other threads need (a connection storm's accepting thread).
 * The window adapts to the gaps the Worker sees; these are its rules, and
 * the channel still delivers what arrives after the poll gave up.
 */

import { expect, test } from "bun:test";
import {
  ChannelRequester,
  ChannelServer,
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
