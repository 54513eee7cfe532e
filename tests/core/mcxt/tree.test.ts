import { describe, expect, test } from "bun:test";
import {
  ALLOCSET_SMALL_SIZES,
  allocSetContextCreate,
  bumpContextCreate,
  memoryContextInit,
} from "../../../src/core/mcxt/mod.ts";

describe("context tree", () => {
  test("a child is created under its parent with a name and an ident, newest first", () => {
    const mcxt = memoryContextInit();
    const a = allocSetContextCreate(mcxt.topMemoryContext, "a", { ident: "first" });
    const b = allocSetContextCreate(mcxt.topMemoryContext, "b");
    expect(a.parent).toBe(mcxt.topMemoryContext);
    expect(a.name).toBe("a");
    expect(a.ident).toBe("first");
    expect(b.ident).toBeUndefined();
    expect(mcxt.topMemoryContext.children().slice(0, 2)).toEqual([b, a]);
    a.setIdentifier("renamed");
    expect(a.ident).toBe("renamed");
  });

  test("reset deletes the children and releases all but the keeper block", () => {
    const mcxt = memoryContextInit();
    const ctx = allocSetContextCreate(mcxt.topMemoryContext, "work");
    const child = allocSetContextCreate(ctx, "child");
    ctx.alloc(3000); // 4 KB chunk
    ctx.alloc(3000); // the second no longer fits the 8 KB keeper block
    expect(ctx.stats().counters.nblocks).toBe(2);
    ctx.reset();
    expect(child.isDeleted).toBe(true);
    expect(ctx.children()).toEqual([]);
    expect(ctx.stats().counters).toEqual({
      nblocks: 1,
      freechunks: 0,
      totalspace: 8192,
      freespace: 8192,
    });
    expect(ctx.memAllocated()).toBe(8192);
    expect(ctx.isEmpty()).toBe(true);
  });

  test("resetOnly keeps the children and their memory", () => {
    const mcxt = memoryContextInit();
    const ctx = allocSetContextCreate(mcxt.topMemoryContext, "work");
    const child = allocSetContextCreate(ctx, "child");
    const kept = child.alloc(10);
    ctx.alloc(10);
    ctx.resetOnly();
    expect(child.isDeleted).toBe(false);
    expect(ctx.isEmpty()).toBe(false); // it still has a child
    expect(child.isEmpty()).toBe(false);
    child.free(kept);
  });

  test("resetChildren resets every descendant but no context is deleted", () => {
    const mcxt = memoryContextInit();
    const ctx = allocSetContextCreate(mcxt.topMemoryContext, "work");
    const child = allocSetContextCreate(ctx, "child");
    const grandchild = allocSetContextCreate(child, "grandchild");
    ctx.alloc(10);
    child.alloc(10);
    grandchild.alloc(10);
    ctx.resetChildren();
    expect(child.isDeleted || grandchild.isDeleted).toBe(false);
    expect(grandchild.isEmpty()).toBe(true);
    expect(child.isEmpty()).toBe(false); // has a child
    expect(child.stats().counters.freespace).toBe(8192);
    expect(ctx.stats().counters.freespace).toBe(8192 - 24);
  });

  test("delete removes the context with its whole subtree", () => {
    const mcxt = memoryContextInit();
    const before = mcxt.topMemoryContext.memAllocated(true);
    const ctx = allocSetContextCreate(mcxt.topMemoryContext, "work");
    const child = allocSetContextCreate(ctx, "child");
    allocSetContextCreate(child, "grandchild").alloc(100_000);
    expect(mcxt.topMemoryContext.memAllocated(true)).toBe(before + 8192 * 3 + 100_008);
    ctx.delete();
    expect(ctx.isDeleted && child.isDeleted).toBe(true);
    expect(mcxt.topMemoryContext.children()).not.toContain(ctx);
    expect(mcxt.topMemoryContext.memAllocated(true)).toBe(before);
    expect(() => ctx.alloc(1)).toThrow(
      'Cannot allocate in memory context "work": it has been deleted',
    );
    expect(() => ctx.delete()).toThrow("it has been deleted");
  });

  test("TopMemoryContext cannot be deleted", () => {
    const mcxt = memoryContextInit();
    expect(() => mcxt.topMemoryContext.delete()).toThrow("Cannot delete TopMemoryContext");
    expect(mcxt.topMemoryContext.isDeleted).toBe(false);
  });

  test("the current context cannot be deleted, nor any context above it", () => {
    const mcxt = memoryContextInit();
    const outer = allocSetContextCreate(mcxt.topMemoryContext, "outer");
    const inner = allocSetContextCreate(outer, "inner");
    mcxt.switchTo(inner);
    expect(() => inner.delete()).toThrow(
      'Cannot delete memory context "inner": it is the current context',
    );
    expect(() => outer.delete()).toThrow('the current context "inner" is inside it');
    expect(() => outer.reset()).toThrow('the current context "inner" is inside it');
    expect(() => outer.deleteChildren()).toThrow("is inside it");
    expect(inner.isDeleted).toBe(false);
    inner.reset(); // resetting the current context itself is fine
    mcxt.switchTo(mcxt.topMemoryContext);
    outer.delete();
    expect(inner.isDeleted).toBe(true);
  });

  test("deleteChildren deletes the descendants and keeps the context", () => {
    const mcxt = memoryContextInit();
    const ctx = allocSetContextCreate(mcxt.topMemoryContext, "work");
    const a = allocSetContextCreate(ctx, "a");
    const b = bumpContextCreate(ctx, "b");
    const chunk = ctx.alloc(8);
    ctx.deleteChildren();
    expect(a.isDeleted && b.isDeleted).toBe(true);
    expect(ctx.isDeleted).toBe(false);
    ctx.free(chunk);
  });

  test("setParent moves a subtree and its byte accounting", () => {
    const mcxt = memoryContextInit();
    const a = allocSetContextCreate(mcxt.topMemoryContext, "a");
    const b = allocSetContextCreate(mcxt.topMemoryContext, "b");
    const moved = allocSetContextCreate(a, "moved", { sizes: ALLOCSET_SMALL_SIZES });
    moved.alloc(5000); // a dedicated block: above the 1 KB chunk limit
    const size = moved.memAllocated(true);
    expect(a.memAllocated(true)).toBe(8192 + size);
    moved.setParent(b);
    expect(moved.parent).toBe(b);
    expect(a.children()).toEqual([]);
    expect(b.children()).toEqual([moved]);
    expect(a.memAllocated(true)).toBe(8192);
    expect(b.memAllocated(true)).toBe(8192 + size);
    moved.setParent(null);
    expect(moved.parent).toBeNull();
    expect(b.memAllocated(true)).toBe(8192);
    moved.setParent(a);
    expect(a.memAllocated(true)).toBe(8192 + size);
  });

  test("setParent refuses cycles, other trees and TopMemoryContext", () => {
    const mcxt = memoryContextInit();
    const other = memoryContextInit();
    const a = allocSetContextCreate(mcxt.topMemoryContext, "a");
    const b = allocSetContextCreate(a, "b");
    expect(() => a.setParent(b)).toThrow('under its own descendant "b"');
    expect(() => a.setParent(a)).toThrow("under its own descendant");
    expect(() => a.setParent(other.topMemoryContext)).toThrow("belongs to another tree");
    expect(() => mcxt.topMemoryContext.setParent(a)).toThrow("Cannot move TopMemoryContext");
  });

  test("isEmpty is true only without children and allocations", () => {
    const mcxt = memoryContextInit();
    const ctx = allocSetContextCreate(mcxt.topMemoryContext, "work");
    expect(ctx.isEmpty()).toBe(true);
    const chunk = ctx.alloc(0);
    expect(ctx.isEmpty()).toBe(false);
    ctx.free(chunk);
    ctx.reset();
    expect(ctx.isEmpty()).toBe(true);
    allocSetContextCreate(ctx, "child");
    expect(ctx.isEmpty()).toBe(false);
  });

  test("memAllocated counts blocks of the context, or of its subtree with recurse", () => {
    const mcxt = memoryContextInit();
    const ctx = allocSetContextCreate(mcxt.topMemoryContext, "work");
    allocSetContextCreate(ctx, "child", { sizes: ALLOCSET_SMALL_SIZES });
    expect(ctx.memAllocated()).toBe(8192);
    expect(ctx.memAllocated(false)).toBe(8192);
    expect(ctx.memAllocated(true)).toBe(8192 + 1024);
  });

  test("switchTo makes a context current and returns the previous one", () => {
    const mcxt = memoryContextInit();
    expect(mcxt.current).toBe(mcxt.topMemoryContext);
    const work = allocSetContextCreate(mcxt.topMemoryContext, "work");
    const old = mcxt.switchTo(work);
    expect(old).toBe(mcxt.topMemoryContext);
    expect(mcxt.current).toBe(work);
    expect(work.isCurrent).toBe(true);
    const chunk = mcxt.palloc(16);
    expect(mcxt.getMemoryChunkContext(chunk)).toBe(work);
    expect(mcxt.switchTo(old)).toBe(work);
    const other = memoryContextInit();
    expect(() => mcxt.switchTo(other.topMemoryContext)).toThrow("does not belong to this tree");
    work.delete();
    expect(() => mcxt.switchTo(work)).toThrow("has been deleted");
  });

  test("a child cannot be created under a deleted context", () => {
    const mcxt = memoryContextInit();
    const ctx = allocSetContextCreate(mcxt.topMemoryContext, "gone");
    ctx.delete();
    expect(() => allocSetContextCreate(ctx, "child")).toThrow('parent "gone" has been deleted');
  });

  test("several trees coexist without sharing state", () => {
    const one = memoryContextInit();
    const two = memoryContextInit();
    const a = one.palloc(32);
    const b = two.palloc(32);
    one.switchTo(one.messageContext);
    expect(two.current).toBe(two.topMemoryContext);
    expect(() => one.pfree(b)).toThrow("not allocated by a memory context of this tree");
    one.pfree(a);
    two.pfree(b);
  });
});
