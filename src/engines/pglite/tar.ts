/**
 * The tar format of a cluster image (image.ts): POSIX ustar, regular files
 * and directories only, names relative to the data directory and shorter
 * than 100 bytes (a data directory's longest is about 30). It is the format
 * PGlite's `loadDataDir` reads, so one file serves both a directory cluster
 * (unpacked here, with node:fs) and a memory:// one (handed to PGlite).
 *
 * Pure byte work: no file access, no compression.
 */

export const TAR_BLOCK = 512;
const BLOCK = TAR_BLOCK;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface TarEntry {
  /** Relative path, "/"-separated, no leading or trailing slash. */
  readonly name: string;
  readonly type: "file" | "directory";
  /** Permission bits. */
  readonly mode: number;
  /** Modification time, seconds since the epoch. */
  readonly mtime: number;
  /** A file's contents; empty for a directory. */
  readonly data: Uint8Array;
}

function putString(header: Uint8Array, at: number, length: number, value: string): void {
  const bytes = encoder.encode(value);
  if (bytes.length > length) throw new RangeError(`tar field too long: "${value}"`);
  header.set(bytes, at);
}

/** An octal number in a field of `length` bytes: digits, then a NUL. */
function putOctal(header: Uint8Array, at: number, length: number, value: number): void {
  putString(header, at, length, `${value.toString(8).padStart(length - 1, "0")}\0`);
}

function header(entry: TarEntry): Uint8Array {
  return tarHeader(entry, entry.type === "file" ? entry.data.length : 0);
}

/** The header block of an entry whose `size` bytes follow, padded to TAR_BLOCK (streaming writers). */
export function tarHeader(entry: Omit<TarEntry, "data">, size: number): Uint8Array {
  const h = new Uint8Array(BLOCK);
  if (entry.name.length === 0 || encoder.encode(entry.name).length >= 100) {
    throw new RangeError(`tar entry name must be 1 to 99 bytes: "${entry.name}"`);
  }
  putString(h, 0, 100, entry.name);
  putOctal(h, 100, 8, entry.mode & 0o7777);
  putOctal(h, 108, 8, 0);
  putOctal(h, 116, 8, 0);
  putOctal(h, 124, 12, entry.type === "file" ? size : 0);
  putOctal(h, 136, 12, Math.max(0, Math.floor(entry.mtime)));
  h.fill(0x20, 148, 156); // the checksum counts its own field as spaces
  h[156] = entry.type === "file" ? 0x30 : 0x35;
  putString(h, 257, 8, "ustar\x0000");
  let sum = 0;
  for (const b of h) sum += b;
  putString(h, 148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  return h;
}

/** The archive of `entries`, in order, with the two zero blocks that end it. */
export function packTar(entries: Iterable<TarEntry>): Uint8Array {
  const parts: { bytes: Uint8Array; at: number }[] = [];
  let size = 0;
  for (const e of entries) {
    parts.push({ bytes: header(e), at: size });
    size += BLOCK;
    if (e.type === "file" && e.data.length > 0) {
      parts.push({ bytes: e.data, at: size });
      size += Math.ceil(e.data.length / BLOCK) * BLOCK;
    }
  }
  // Zero-filled: the padding of each file and the two blocks that end the archive.
  const out = new Uint8Array(size + 2 * BLOCK);
  for (const p of parts) out.set(p.bytes, p.at);
  return out;
}

function readString(block: Uint8Array, at: number, length: number): string {
  const field = block.subarray(at, at + length);
  const end = field.indexOf(0);
  return decoder.decode(end === -1 ? field : field.subarray(0, end));
}

function readOctal(block: Uint8Array, at: number, length: number): number {
  const text = readString(block, at, length).trim();
  return text === "" ? 0 : parseInt(text, 8);
}

/** The entries of an archive made by packTar (or any ustar of files and directories). */
export function* unpackTar(tar: Uint8Array): Generator<TarEntry> {
  let at = 0;
  while (at + BLOCK <= tar.length) {
    const block = tar.subarray(at, at + BLOCK);
    if (block.every((b) => b === 0)) return;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
    if (sum !== readOctal(block, 148, 8)) throw new Error(`corrupt tar header at byte ${at}`);
    const prefix = readString(block, 345, 155);
    const base = readString(block, 0, 100).replace(/\/+$/, "");
    const name = prefix === "" ? base : `${prefix}/${base}`;
    const flag = block[156];
    const size = readOctal(block, 124, 12);
    at += BLOCK;
    if (at + size > tar.length) throw new Error(`tar entry "${name}" runs past the archive's end`);
    const common = { name, mode: readOctal(block, 100, 8), mtime: readOctal(block, 136, 12) };
    if (flag === 0x30 || flag === 0) {
      yield { ...common, type: "file", data: tar.subarray(at, at + size) };
    } else if (flag === 0x35) {
      yield { ...common, type: "directory", data: new Uint8Array(0) };
    } else {
      throw new Error(`tar entry "${name}" has an unsupported type ${String.fromCharCode(flag!)}`);
    }
    at += Math.ceil(size / BLOCK) * BLOCK;
  }
}
