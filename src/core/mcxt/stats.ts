/**
 * Memory-context statistics, the pgts counterpart of MemoryContextStats and
 * pg_get_backend_memory_contexts in PostgreSQL's mcxt.c.
 *
 * Three forms of the same walk: the text PostgreSQL writes to stderr (one
 * line per context, two spaces of indentation per level, children beyond
 * `maxChildren` folded into one "k more child contexts" line, then the grand
 * total), the log form with its `level: N; ` prefix, and the rows of
 * `pg_backend_memory_contexts`. The numbers are exactly those the
 * allocators report; this module only walks and formats, never allocates in
 * a context.
 */

import { ereport } from "../elog.ts";
import type { MemoryContextCounters, MemoryContextType } from "./memnodes.ts";
import type { MemoryContext } from "./mcxt.ts";

/** How much of the tree the text forms show. */
export interface MemoryContextStatsOptions {
  /** Deepest level shown one context per line; deeper ones are summarised. Default 100. */
  maxLevel?: number;
  /** Children shown per parent; the rest are summarised. Default 100. */
  maxChildren?: number;
}

/** One row of `pg_backend_memory_contexts`. */
export interface BackendMemoryContext {
  name: string;
  ident: string | null;
  type: MemoryContextType;
  /** 1-based depth: the length of `path`. */
  level: number;
  /** Ids of the ancestors from the root, ending with this context's own id. */
  path: number[];
  total_bytes: number;
  total_nblocks: number;
  free_bytes: number;
  free_chunks: number;
  used_bytes: number;
}

interface StatsLine {
  /** The level printed in the log form. */
  level: number;
  /** Spaces of indentation in the stderr form. */
  indent: number;
  text: string;
}

const encoder = new TextEncoder();

/** Cuts a string to at most `maxBytes` of UTF-8 without splitting a character. */
function clipUtf8(s: string, maxBytes: number): { text: string; clipped: boolean } {
  if (s.length * 3 <= maxBytes || encoder.encode(s).length <= maxBytes) {
    return { text: s, clipped: false };
  }
  let bytes = 0;
  let end = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    const n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (bytes + n > maxBytes) break;
    bytes += n;
    end += ch.length;
  }
  return { text: s.slice(0, end), clipped: true };
}

/** Name and ident as PostgreSQL shows them: a dynahash context goes by its table name. */
function displayName(context: MemoryContext): { name: string; ident: string | undefined } {
  const ident = context.ident;
  if (ident !== undefined && context.name === "dynahash") return { name: ident, ident: undefined };
  return { name: context.name, ident };
}

/** `: ident`, clipped at 100 bytes with "...", control characters as spaces. */
function identSuffix(ident: string | undefined): string {
  if (ident === undefined) return "";
  const { text, clipped } = clipUtf8(ident, 100);
  // deno-lint-ignore no-control-regex
  return `: ${text.replace(/[\x00-\x1f]/g, " ")}${clipped ? "..." : ""}`;
}

function zero(): MemoryContextCounters {
  return { nblocks: 0, freechunks: 0, totalspace: 0, freespace: 0 };
}

function add(into: MemoryContextCounters, c: MemoryContextCounters): void {
  into.nblocks += c.nblocks;
  into.freechunks += c.freechunks;
  into.totalspace += c.totalspace;
  into.freespace += c.freespace;
}

/** Adds a context and all its descendants into `into`; returns how many there were. */
function accumulateSubtree(context: MemoryContext, into: MemoryContextCounters): number {
  add(into, context.stats().counters);
  let n = 1;
  for (let c = context.firstChild; c !== null; c = c.nextChild) n += accumulateSubtree(c, into);
  return n;
}

function walk(
  context: MemoryContext,
  level: number,
  limits: { maxLevel: number; maxChildren: number },
  totals: MemoryContextCounters,
  out: StatsLine[],
): void {
  const { counters, line } = context.stats();
  add(totals, counters);
  const { name, ident } = displayName(context);
  out.push({ level, indent: 2 * (level - 1), text: `${name}: ${line}${identSuffix(ident)}` });
  let child = context.firstChild;
  let shown = 0;
  if (level <= limits.maxLevel) {
    for (; child !== null && shown < limits.maxChildren; child = child.nextChild, shown++) {
      walk(child, level + 1, limits, totals, out);
    }
  }
  if (child === null) return;
  const rest = zero();
  let count = 0;
  for (; child !== null; child = child.nextChild) count += accumulateSubtree(child, rest);
  out.push({
    level,
    indent: 2 * level,
    text:
      `${count} more child contexts containing ${rest.totalspace} total in ${rest.nblocks} blocks; ${rest.freespace} free (${rest.freechunks} chunks); ${
        rest.totalspace - rest.freespace
      } used`,
  });
  add(totals, rest);
}

function collect(
  context: MemoryContext,
  options: MemoryContextStatsOptions,
): { lines: StatsLine[]; grandTotal: string } {
  const limits = { maxLevel: options.maxLevel ?? 100, maxChildren: options.maxChildren ?? 100 };
  const totals = zero();
  const lines: StatsLine[] = [];
  walk(context, 1, limits, totals, lines);
  const grandTotal =
    `Grand total: ${totals.totalspace} bytes in ${totals.nblocks} blocks; ${totals.freespace} free (${totals.freechunks} chunks); ${
      totals.totalspace - totals.freespace
    } used`;
  return { lines, grandTotal };
}

/**
 * The stats of a context and its descendants as PostgreSQL's
 * MemoryContextStats prints them to stderr, one line per context and a
 * closing grand total, each line ending in a newline.
 */
export function memoryContextStats(
  context: MemoryContext,
  options: MemoryContextStatsOptions = {},
): string {
  const { lines, grandTotal } = collect(context, options);
  let text = "";
  for (const l of lines) text += `${" ".repeat(l.indent)}${l.text}\n`;
  return `${text}${grandTotal}\n`;
}

/**
 * The same stats as the log messages of pg_log_backend_memory_contexts: one
 * message per line, prefixed `level: N; `, the grand total unprefixed.
 */
export function memoryContextStatsLog(
  context: MemoryContext,
  options: MemoryContextStatsOptions = {},
): string[] {
  const { lines, grandTotal } = collect(context, options);
  return [...lines.map((l) => `level: ${l.level}; ${l.text}`), grandTotal];
}

/** Reports the log form of the stats through ereport at LOG, one message per line. */
export function logMemoryContextStats(
  context: MemoryContext,
  options: MemoryContextStatsOptions = {},
): void {
  for (const message of memoryContextStatsLog(context, options)) ereport("LOG", message);
}

/** The counters of a context and all its descendants (MemoryContextMemConsumed). */
export function memoryContextMemConsumed(context: MemoryContext): MemoryContextCounters {
  const totals = zero();
  accumulateSubtree(context, totals);
  return totals;
}

/**
 * The rows of `pg_backend_memory_contexts` for `root` and its descendants,
 * in breadth-first order; ids are assigned in that order from 1, so they are
 * stable only within one call, as in PostgreSQL.
 */
export function getBackendMemoryContexts(root: MemoryContext): BackendMemoryContext[] {
  const rows: BackendMemoryContext[] = [];
  const queue: { context: MemoryContext; path: number[] }[] = [{ context: root, path: [1] }];
  let nextId = 2;
  for (let i = 0; i < queue.length; i++) {
    const { context, path } = queue[i]!;
    for (let c = context.firstChild; c !== null; c = c.nextChild) {
      queue.push({ context: c, path: [...path, nextId++] });
    }
    const { counters } = context.stats();
    const { name, ident } = displayName(context);
    rows.push({
      name,
      ident: ident === undefined ? null : clipUtf8(ident, 1023).text,
      type: context.type,
      level: path.length,
      path,
      total_bytes: counters.totalspace,
      total_nblocks: counters.nblocks,
      free_bytes: counters.freespace,
      free_chunks: counters.freechunks,
      used_bytes: counters.totalspace - counters.freespace,
    });
  }
  return rows;
}
