import { describe, expect, test } from "bun:test";
import { PgError } from "../../../src/core/elog.ts";
import {
  allocSetContextCreate,
  bumpContextCreate,
  memoryContextInit,
} from "../../../src/core/mcxt/mod.ts";

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error");
}

describe("byte limits", () => {
  test("exceeding a tree's limit raises out of memory, SQLSTATE 53200", () => {
    const mcxt = memoryContextInit({ limit: 128 * 1024 });
    const work = allocSetContextCreate(mcxt.messageContext, "ExecutorState");
    const e = catchError(() => work.alloc(200_000));
    expect(e).toBeInstanceOf(PgError);
    const err = e as PgError;
    expect(err.code).toBe("53200");
    expect(err.severity).toBe("ERROR");
    expect(err.message).toBe("out of memory");
    expect(err.detail).toBe(
      'Failed on request of size 200000 in memory context "ExecutorState".',
    );
  });

  test("the limit counts blocks across the subtree, small requests included", () => {
    const mcxt = memoryContextInit();
    const query = allocSetContextCreate(mcxt.topMemoryContext, "query", { limit: 64 * 1024 });
    const child = allocSetContextCreate(query, "child");
    expect(query.limit).toBe(64 * 1024);
    const e = catchError(() => {
      for (let i = 0; i < 1000; i++) child.alloc(1000);
    }) as PgError;
    expect(e.code).toBe("53200");
    expect(e.detail).toBe('Failed on request of size 1000 in memory context "child".');
    expect(query.memAllocated(true)).toBeLessThanOrEqual(64 * 1024);
    query.setLimit(undefined);
    child.alloc(100_000); // no limit any more
    expect(() => query.setLimit(-1)).toThrow(RangeError);
  });

  test("after running out of memory ErrorContext still has its 8 KB reserve", () => {
    const reports: string[] = [];
    const mcxt = memoryContextInit({
      limit: 80 * 1024,
      onOutOfMemory: (stats) => reports.push(stats),
    });
    const e = catchError(() => mcxt.messageContext.alloc(1_000_000)) as PgError;
    // Build the error report in ErrorContext, as elog.c does.
    const old = mcxt.switchTo(mcxt.errorContext);
    const text = new TextEncoder().encode(`ERROR:  ${e.message}\nDETAIL:  ${e.detail}`);
    const report = mcxt.palloc(text.length);
    report.set(text);
    expect(new TextDecoder().decode(report)).toContain("Failed on request of size 1000000");
    expect(mcxt.getMemoryChunkContext(report)).toBe(mcxt.errorContext);
    mcxt.switchTo(old);
    mcxt.errorContext.reset();
    expect(mcxt.errorContext.memAllocated()).toBe(8192); // the reserve is never released
    // As PostgreSQL does, the stats of the whole tree were dumped before the error.
    expect(reports.length).toBe(1);
    expect(reports[0]).toStartWith("TopMemoryContext: ");
    expect(reports[0]).toContain("  ErrorContext: 8192 total in 1 blocks;");
  });

  test("a context whose first block is over the limit is not created", () => {
    const mcxt = memoryContextInit();
    const capped = allocSetContextCreate(mcxt.topMemoryContext, "capped", { limit: 10_000 });
    const e = catchError(() => bumpContextCreate(capped, "too-big")) as PgError;
    expect(e.code).toBe("53200");
    expect(e.detail).toBe('Failed while creating memory context "too-big".');
    expect(capped.children()).toEqual([]);
  });
});

describe("owned resources", () => {
  test("reset callbacks run newest first, children before parents, once", () => {
    const mcxt = memoryContextInit();
    const parent = allocSetContextCreate(mcxt.topMemoryContext, "parent");
    const child = allocSetContextCreate(parent, "child");
    const order: string[] = [];
    parent.registerResetCallback(() => void order.push("parent 1"));
    parent.registerResetCallback(() => void order.push("parent 2"));
    child.registerResetCallback(() => void order.push("child"));
    parent.reset();
    expect(order).toEqual(["child", "parent 2", "parent 1"]);
    parent.reset();
    parent.delete();
    expect(order.length).toBe(3);
  });

  test("resetChildren and delete run the callbacks of the contexts they touch", () => {
    const mcxt = memoryContextInit();
    const parent = allocSetContextCreate(mcxt.topMemoryContext, "parent");
    const child = allocSetContextCreate(parent, "child");
    const order: string[] = [];
    parent.registerResetCallback(() => void order.push("parent"));
    child.registerResetCallback(() => void order.push("child"));
    parent.resetChildren();
    expect(order).toEqual(["child"]);
    parent.delete();
    expect(order).toEqual(["child", "parent"]);
  });

  test("a throwing callback does not stop the others, and its error is rethrown", () => {
    const mcxt = memoryContextInit();
    const ctx = allocSetContextCreate(mcxt.topMemoryContext, "ctx");
    let ran = false;
    ctx.registerResetCallback(() => void (ran = true));
    ctx.registerResetCallback(() => {
      throw new Error("boom");
    });
    expect(() => ctx.delete()).toThrow("boom");
    expect(ran).toBe(true);
    expect(ctx.isDeleted).toBe(true);
  });

  test("own disposes timers, sockets and handles on reset or delete", () => {
    const mcxt = memoryContextInit();
    const ctx = allocSetContextCreate(mcxt.topMemoryContext, "portal");
    const closed: string[] = [];
    const timer = setInterval(() => {}, 1000);
    ctx.own({ [Symbol.dispose]: () => clearInterval(timer) });
    ctx.own({ [Symbol.dispose]: () => void closed.push("socket") });
    const handle = ctx.own({ name: "file", [Symbol.dispose]: () => void closed.push("file") });
    expect(handle.name).toBe("file");
    ctx.reset();
    expect(closed).toEqual(["file", "socket"]);
    expect(() => ctx.own({} as Disposable)).toThrow("neither Symbol.dispose");
  });

  test("a context is Disposable: using deletes it at the end of the scope", () => {
    const mcxt = memoryContextInit();
    let closed = false;
    let escaped: ReturnType<typeof allocSetContextCreate> | undefined;
    {
      using scratch = allocSetContextCreate(mcxt.topMemoryContext, "scratch");
      scratch.own({ [Symbol.dispose]: () => void (closed = true) });
      scratch.alloc(100);
      escaped = scratch;
    }
    expect(escaped.isDeleted).toBe(true);
    expect(closed).toBe(true);
  });

  test("async disposal awaits what the context owned", async () => {
    const mcxt = memoryContextInit();
    const steps: string[] = [];
    {
      await using conn = allocSetContextCreate(mcxt.topMemoryContext, "conn");
      conn.own({
        [Symbol.asyncDispose]: async () => {
          await new Promise((r) => setTimeout(r, 5));
          steps.push("socket closed");
        },
      });
    }
    expect(steps).toEqual(["socket closed"]);
  });

  test("async disposal rethrows a failed release", async () => {
    const mcxt = memoryContextInit();
    const conn = allocSetContextCreate(mcxt.topMemoryContext, "conn");
    conn.own({ [Symbol.asyncDispose]: () => Promise.reject(new Error("close failed")) });
    await expect(conn[Symbol.asyncDispose]()).rejects.toThrow("close failed");
  });
});
