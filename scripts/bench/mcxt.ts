/**
 * Memory contexts against fresh buffers, side by side in one run.
 *
 *   bun scripts/bench/mcxt.ts [--quick]
 *   deno run -A scripts/bench/mcxt.ts [--quick]
 *
 * Each scenario runs the same work twice, once with a context and once with
 * `new Uint8Array(n)`, in alternating rounds; the figure kept is the median
 * round. Both sides write a byte into every buffer and keep the same number
 * of buffers alive, so neither can skip work the other does:
 *
 * - churn: a ring of 64 live buffers; each step drops the oldest and makes a
 *   new one (AllocSet: free + alloc).
 * - message: 32 buffers per "message", all dropped at its end (Bump: alloc,
 *   then reset per message).
 *
 * Each also runs against a pointer context (`pointers: true`): the context
 * side allocates a pointer, writes a byte at it through `cx.memory` (read
 * afresh every time, as callers must, since an allocation may move it) and
 * keeps the pointer in the ring; the fresh side is unchanged.
 *
 * Sizes are 8 B to 1 KB, either drawn from 16 recurring sizes (the shape of
 * real palloc traffic: the same structs again and again) or uniformly at
 * random (the worst case for view reuse). Heap growth is process memory
 * before and after each side of the last round, without forcing a GC.
 */

import process from "node:process";
import {
  allocSetContextCreate,
  bumpContextCreate,
  memoryContextInit,
  slabContextCreate,
} from "../../src/core/mcxt/mod.ts";

const quick = process.argv.includes("--quick");
const STEPS = quick ? 400_000 : 3_000_000;
const ROUNDS = quick ? 3 : 7;
const RING = 64;
const PER_MESSAGE = 32;
const TABLE = 4096;

let seed = 0x2545f491;
function random(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}

const COMMON = [8, 16, 24, 32, 40, 48, 64, 96, 128, 160, 256, 384, 512, 640, 1000, 1024];
const recurring = Int32Array.from({ length: TABLE }, () => COMMON[random() % COMMON.length]!);
const uniform = Int32Array.from({ length: TABLE }, () => 8 + (random() % 1017));

const mcxt = memoryContextInit();
let sink = 0;

function churnFresh(sizes: Int32Array): void {
  const ring: Uint8Array[] = new Array(RING);
  for (let i = 0; i < STEPS; i++) {
    const chunk = new Uint8Array(sizes[i & (TABLE - 1)]!);
    chunk[0] = i;
    ring[i & (RING - 1)] = chunk;
  }
  sink += ring[0]!.length;
}

function churnAllocSet(sizes: Int32Array): void {
  const cx = allocSetContextCreate(mcxt.topMemoryContext, "churn");
  const ring: (Uint8Array | undefined)[] = new Array(RING);
  for (let i = 0; i < STEPS; i++) {
    const j = i & (RING - 1);
    const old = ring[j];
    if (old !== undefined) cx.free(old);
    const chunk = cx.alloc(sizes[i & (TABLE - 1)]!);
    chunk[0] = i;
    ring[j] = chunk;
  }
  sink += ring[0]!.length;
  cx.delete();
}

function churnAllocSetPtr(sizes: Int32Array): void {
  const cx = allocSetContextCreate(mcxt.topMemoryContext, "churn", { pointers: true });
  const ring = new Int32Array(RING).fill(-1);
  for (let i = 0; i < STEPS; i++) {
    const j = i & (RING - 1);
    const old = ring[j]!;
    if (old >= 0) cx.freePtr(old);
    const ptr = cx.allocPtr(sizes[i & (TABLE - 1)]!);
    cx.memory[ptr] = i;
    ring[j] = ptr;
  }
  sink += ring[0]!;
  cx.delete();
}

function churnSlab(): void {
  const cx = slabContextCreate(mcxt.topMemoryContext, "slab", { chunkSize: 64 });
  const ring: (Uint8Array | undefined)[] = new Array(RING);
  for (let i = 0; i < STEPS; i++) {
    const j = i & (RING - 1);
    const old = ring[j];
    if (old !== undefined) cx.free(old);
    const chunk = cx.alloc(64);
    chunk[0] = i;
    ring[j] = chunk;
  }
  sink += ring[0]!.length;
  cx.delete();
}

function churnFresh64(): void {
  const ring: Uint8Array[] = new Array(RING);
  for (let i = 0; i < STEPS; i++) {
    const chunk = new Uint8Array(64);
    chunk[0] = i;
    ring[i & (RING - 1)] = chunk;
  }
  sink += ring[0]!.length;
}

/** `shift` 0 repeats one message layout; otherwise every message differs. */
function messagesFresh(sizes: Int32Array, shift: number): void {
  const message: Uint8Array[] = new Array(PER_MESSAGE);
  for (let m = 0; m < STEPS; m += PER_MESSAGE) {
    const base = (m * shift) & (TABLE - 1);
    for (let k = 0; k < PER_MESSAGE; k++) {
      const chunk = new Uint8Array(sizes[(base + k) & (TABLE - 1)]!);
      chunk[0] = k;
      message[k] = chunk;
    }
    sink += message[0]!.length;
  }
}

function messagesBump(sizes: Int32Array, shift: number): void {
  // The keeper block is sized for one message, as a per-message context would be.
  const cx = bumpContextCreate(mcxt.topMemoryContext, "message", {
    sizes: { minContextSize: 64 * 1024, initBlockSize: 8 * 1024, maxBlockSize: 8 * 1024 * 1024 },
  });
  const message: Uint8Array[] = new Array(PER_MESSAGE);
  for (let m = 0; m < STEPS; m += PER_MESSAGE) {
    const base = (m * shift) & (TABLE - 1);
    for (let k = 0; k < PER_MESSAGE; k++) {
      const chunk = cx.alloc(sizes[(base + k) & (TABLE - 1)]!);
      chunk[0] = k;
      message[k] = chunk;
    }
    sink += message[0]!.length;
    cx.reset();
  }
  cx.delete();
}

function messagesBumpPtr(sizes: Int32Array, shift: number): void {
  const cx = bumpContextCreate(mcxt.topMemoryContext, "message", {
    sizes: { minContextSize: 64 * 1024, initBlockSize: 8 * 1024, maxBlockSize: 8 * 1024 * 1024 },
    pointers: true,
  });
  const message = new Int32Array(PER_MESSAGE);
  for (let m = 0; m < STEPS; m += PER_MESSAGE) {
    const base = (m * shift) & (TABLE - 1);
    for (let k = 0; k < PER_MESSAGE; k++) {
      const ptr = cx.allocPtr(sizes[(base + k) & (TABLE - 1)]!);
      cx.memory[ptr] = k;
      message[k] = ptr;
    }
    sink += message[1]!;
    cx.reset();
  }
  cx.delete();
}

interface Side {
  opsPerSec: number[];
  heapDelta: number;
  rssDelta: number;
}

function timeOnce(work: () => void, side: Side): void {
  const before = process.memoryUsage();
  const t0 = performance.now();
  work();
  const ms = performance.now() - t0;
  const after = process.memoryUsage();
  side.opsPerSec.push(STEPS / ms * 1000);
  side.heapDelta = after.heapUsed - before.heapUsed;
  side.rssDelta = after.rss - before.rss;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

interface Result {
  name: string;
  fresh: Side;
  pool: Side;
}

function compare(name: string, fresh: () => void, pool: () => void): Result {
  const f: Side = { opsPerSec: [], heapDelta: 0, rssDelta: 0 };
  const p: Side = { opsPerSec: [], heapDelta: 0, rssDelta: 0 };
  fresh(); // warm up both before measuring
  pool();
  for (let r = 0; r < ROUNDS; r++) {
    timeOnce(fresh, f);
    timeOnce(pool, p);
  }
  return { name, fresh: f, pool: p };
}

function mops(n: number): string {
  return `${(n / 1e6).toFixed(2)} M/s`;
}

function kb(n: number): string {
  return `${(n / 1024).toFixed(0)} KB`;
}

const runtime = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined"
  ? `bun ${process.versions.bun}`
  : `deno ${(globalThis as { Deno?: { version: { deno: string } } }).Deno?.version.deno}`;

const scenarios: [string, () => void, () => void][] = [
  ["AllocSet churn, recurring sizes", () => churnFresh(recurring), () => churnAllocSet(recurring)],
  ["AllocSet churn, uniform sizes", () => churnFresh(uniform), () => churnAllocSet(uniform)],
  [
    "Bump per message, same layout",
    () => messagesFresh(recurring, 0),
    () => messagesBump(recurring, 0),
  ],
  [
    "Bump per message, recurring sizes",
    () => messagesFresh(recurring, 1),
    () => messagesBump(recurring, 1),
  ],
  [
    "Bump per message, uniform sizes",
    () => messagesFresh(uniform, 1),
    () => messagesBump(uniform, 1),
  ],
  ["Slab churn, 64 B", churnFresh64, churnSlab],
  [
    "AllocSet ptr churn, recurring sizes",
    () => churnFresh(recurring),
    () => churnAllocSetPtr(recurring),
  ],
  ["AllocSet ptr churn, uniform sizes", () => churnFresh(uniform), () => churnAllocSetPtr(uniform)],
  [
    "Bump ptr per message, same layout",
    () => messagesFresh(recurring, 0),
    () => messagesBumpPtr(recurring, 0),
  ],
  [
    "Bump ptr per message, recurring",
    () => messagesFresh(recurring, 1),
    () => messagesBumpPtr(recurring, 1),
  ],
  [
    "Bump ptr per message, uniform",
    () => messagesFresh(uniform, 1),
    () => messagesBumpPtr(uniform, 1),
  ],
];

console.log(
  `pgts mcxt bench — ${runtime}, ${STEPS} buffers per round, median of ${ROUNDS} rounds${
    quick ? " (--quick)" : ""
  }`,
);
console.log(
  [
    "scenario".padEnd(36),
    "fresh".padStart(11),
    "context".padStart(11),
    "ratio".padStart(7),
    "heap Δ fresh".padStart(13),
    "heap Δ ctx".padStart(11),
    "rss Δ fresh".padStart(12),
    "rss Δ ctx".padStart(10),
  ].join(" "),
);
for (const [name, fresh, pool] of scenarios) {
  const r = compare(name, fresh, pool);
  const f = median(r.fresh.opsPerSec);
  const p = median(r.pool.opsPerSec);
  console.log(
    [
      name.padEnd(36),
      mops(f).padStart(11),
      mops(p).padStart(11),
      `${(p / f).toFixed(2)}x`.padStart(7),
      kb(r.fresh.heapDelta).padStart(13),
      kb(r.pool.heapDelta).padStart(11),
      kb(r.fresh.rssDelta).padStart(12),
      kb(r.pool.rssDelta).padStart(10),
    ].join(" "),
  );
}
if (sink === 0) console.log("(no work done)");
