import { describe, expect, test } from "bun:test";
import {
  allocSetContextCreate,
  backendMemoryContexts,
  memoryContextInit,
} from "../../../src/core/mcxt/mod.ts";

describe("memoryContextInit", () => {
  test("creates PostgreSQL's standard contexts under TopMemoryContext", () => {
    const mcxt = memoryContextInit();
    expect(mcxt.topMemoryContext.name).toBe("TopMemoryContext");
    expect(mcxt.topMemoryContext.parent).toBeNull();
    expect(mcxt.topMemoryContext.children().map((c) => c.name)).toEqual([
      "TopTransactionContext",
      "MessageContext",
      "CacheMemoryContext",
      "PostmasterContext",
      "ErrorContext",
    ]);
    for (const c of mcxt.topMemoryContext.children()) expect(c.type).toBe("AllocSet");
    expect(mcxt.current).toBe(mcxt.topMemoryContext);
  });

  test("ErrorContext is 8 KB min, init and max, and keeps its block across resets", () => {
    const mcxt = memoryContextInit();
    const err = mcxt.errorContext;
    expect(err.memAllocated()).toBe(8192);
    expect(err.chunkLimit).toBe(1024);
    for (let i = 0; i < 20; i++) err.alloc(1000);
    expect(err.stats().counters.totalspace).toBe(8192 * 3); // grows by 8 KB blocks only
    err.reset();
    expect(err.memAllocated()).toBe(8192);
  });

  test("a child deletes PostmasterContext once it is set up", () => {
    const mcxt = memoryContextInit();
    const pm = mcxt.postmasterContext!;
    const setup = allocSetContextCreate(pm, "child setup");
    mcxt.switchTo(setup);
    mcxt.deletePostmasterContext();
    expect(mcxt.postmasterContext).toBeNull();
    expect(pm.isDeleted && setup.isDeleted).toBe(true);
    expect(mcxt.current).toBe(mcxt.topMemoryContext);
    mcxt.deletePostmasterContext(); // a second time does nothing
  });

  test("MessageContext is made current and reset at every command", () => {
    const mcxt = memoryContextInit();
    expect(mcxt.startCommand()).toBe(mcxt.messageContext);
    expect(mcxt.current).toBe(mcxt.messageContext);
    const message = mcxt.palloc(5000);
    allocSetContextCreate(mcxt.messageContext, "parse");
    mcxt.startCommand();
    expect(mcxt.messageContext.isEmpty()).toBe(true);
    expect(() => mcxt.pfree(message)).toThrow("its block was released");
  });

  test("TopTransactionContext is reset at the end of the transaction", () => {
    const mcxt = memoryContextInit();
    mcxt.switchTo(mcxt.topTransactionContext);
    mcxt.palloc(100);
    mcxt.endTransaction();
    expect(mcxt.current).toBe(mcxt.topMemoryContext);
    expect(mcxt.topTransactionContext.isEmpty()).toBe(true);
  });

  test("pfree, repalloc and palloc0 work on the chunk's own context", () => {
    const mcxt = memoryContextInit();
    mcxt.switchTo(mcxt.cacheMemoryContext);
    const a = mcxt.palloc0(10);
    expect([...a]).toEqual(new Array(10).fill(0));
    a[0] = 7;
    mcxt.switchTo(mcxt.messageContext);
    const b = mcxt.repalloc(a, 100);
    expect(b[0]).toBe(7);
    expect(mcxt.getMemoryChunkContext(b)).toBe(mcxt.cacheMemoryContext);
    mcxt.pfree(b);
    expect(() => mcxt.pfree(b)).toThrow("not a live chunk");
    expect(() => mcxt.getMemoryChunkContext(new Uint8Array(1))).toThrow(
      "it is not a live chunk of this tree",
    );
  });

  test("disposing the tree runs every reset callback, as a backend exit would", () => {
    const closed: string[] = [];
    {
      using mcxt = memoryContextInit();
      mcxt.cacheMemoryContext.own({ [Symbol.dispose]: () => void closed.push("cache") });
      mcxt.topMemoryContext.own({ [Symbol.dispose]: () => void closed.push("top") });
    }
    expect(closed).toEqual(["cache", "top"]);
  });

  test("a backend's tree has no PostmasterContext and, recycled, is the next backend's, as new", () => {
    const fresh = memoryContextInit({ lean: true });
    fresh.deletePostmasterContext();
    const first = backendMemoryContexts();
    expect(first.stats()).toBe(fresh.stats());
    // A backend's life: messages, a cache entry, contexts of its own, a callback.
    first.startCommand();
    first.palloc(300).fill(7);
    const cached = allocSetContextCreate(first.cacheMemoryContext, "relcache entry");
    cached.alloc(50_000); // a block beyond the keeper
    const own = allocSetContextCreate(first.topMemoryContext, "portal");
    first.messageContext.setIdentifier("SELECT 1");
    const closed: string[] = [];
    first.topMemoryContext.own({ [Symbol.dispose]: () => void closed.push("top") });
    first.recycle();
    first.recycle(); // a second time changes nothing: no two backends get one tree
    expect(closed).toEqual(["top"]);
    expect(cached.isDeleted && own.isDeleted).toBe(true);

    const next = backendMemoryContexts();
    expect(next).toBe(first);
    expect(next.stats()).toBe(fresh.stats()); // same contexts, sizes and emptiness
    expect(next.current).toBe(next.topMemoryContext);
    expect(next.messageContext.ident).toBeUndefined();
    const other = backendMemoryContexts();
    expect(other).not.toBe(next);
    other.recycle();
    next.recycle();
  });

  test("an idle backend's tree holds no block at all", () => {
    const mcxt = backendMemoryContexts();
    expect(mcxt.topMemoryContext.memAllocated(true)).toBe(0);
    mcxt.startCommand();
    const body = mcxt.palloc(300); // MessageContext's first block: 1 KB
    const big = mcxt.palloc(4000); // a bigger message: a new block, doubled to fit it
    expect(mcxt.messageContext.memAllocated()).toBe(1024 + 8192);
    const cache = mcxt.cacheMemoryContext.alloc(100); // a context an idle backend never uses
    expect(mcxt.cacheMemoryContext.memAllocated()).toBe(8192);
    mcxt.cacheMemoryContext.free(cache);
    mcxt.cacheMemoryContext.reset();
    mcxt.startCommand(); // the next command: every block of the last message is given back
    expect(mcxt.topMemoryContext.memAllocated(true)).toBe(0);
    expect(() => mcxt.pfree(body)).toThrow(); // the old chunk is no longer live
    // A given-back block of a keeper size is the next keeperless context's, zeroed.
    const again = mcxt.topTransactionContext.alloc(100);
    expect([cache.buffer, big.buffer]).toContain(again.buffer);
    expect(again.every((b) => b === 0)).toBe(true);
    const message = mcxt.palloc(300);
    expect(message.buffer).toBe(body.buffer); // the message's 1 KB block comes back too
    mcxt.endTransaction();
    mcxt.startCommand();
    expect(mcxt.topMemoryContext.memAllocated(true)).toBe(0);
    mcxt.recycle();
  });

  test("a tree with a memory limit is disposed, not recycled", () => {
    const limited = memoryContextInit({ limit: 1 << 20 });
    limited.deletePostmasterContext();
    limited.recycle();
    expect(limited.topMemoryContext.children()).toEqual([]);
    expect(backendMemoryContexts()).not.toBe(limited);
  });

  test("many trees live side by side, one per in-process child", () => {
    const children = Array.from({ length: 20 }, () => memoryContextInit({ limit: 256 * 1024 }));
    children.forEach((mcxt, i) => {
      mcxt.startCommand();
      mcxt.palloc(100 + i);
    });
    children.forEach((mcxt, i) => {
      expect(mcxt.current).toBe(mcxt.messageContext);
      expect(mcxt.messageContext.stats().counters.freespace).toBeLessThan(8192);
      expect(children[(i + 1) % 20]!.messageContext).not.toBe(mcxt.messageContext);
    });
  });
});
