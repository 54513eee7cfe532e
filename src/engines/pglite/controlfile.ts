/**
 * pg_control's system identifier. PostgreSQL's initdb gives every cluster a
 * new one (BootStrapXLOG: seconds, microseconds and the pid); WAL records
 * and base backups carry it so that files of two clusters are never mixed.
 * A cluster copied from the image (image.ts) would share the image's, so
 * the copy is given a new identifier and pg_control's CRC-32C is computed
 * again. The per-database clusters of one pgts cluster (dbcommands.ts)
 * share their cluster's identifier, as PostgreSQL's databases share theirs.
 *
 * Pure byte work on pg_control's first sector: ControlFileData begins with
 * the identifier (uint64), and its `crc` field follows the data it covers;
 * the field's offset is found by the CRC itself, so no layout of a
 * particular PostgreSQL version is hard-coded.
 */

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli), as PostgreSQL's pg_crc32c. */
export function crc32c(bytes: Uint8Array, end = bytes.length): number {
  let c = 0xffffffff;
  for (let i = 0; i < end; i++) c = CRC32C_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The offset of pg_control's crc field: the first 8-aligned place whose CRC covers what precedes it. */
function crcOffset(control: Uint8Array): number {
  const view = new DataView(control.buffer, control.byteOffset, control.byteLength);
  for (let at = 8; at + 4 <= Math.min(control.length, 512); at += 4) {
    if (view.getUint32(at, true) === crc32c(control, at)) return at;
  }
  throw new Error("pg_control has no valid CRC in its first 512 bytes");
}

export function systemIdentifier(control: Uint8Array): bigint {
  return new DataView(control.buffer, control.byteOffset, 8).getBigUint64(0, true);
}

/** A new identifier as initdb makes it: seconds in the high 32 bits, then microseconds and a random part. */
export function newSystemIdentifier(): bigint {
  const now = Date.now();
  const seconds = BigInt(Math.floor(now / 1000));
  const micros = BigInt((now % 1000) * 1000 + Math.floor(Math.random() * 1000));
  const rand = BigInt(crypto.getRandomValues(new Uint16Array(1))[0]!);
  return (seconds << 32n) | (micros << 12n) | (rand & 0xfffn);
}

/** XLogLongPageHeaderData.xlp_sysid: the first page of every WAL segment names its cluster. */
const XLP_SYSID = 24;

/** A WAL segment file's name (timeline, log, segment: 24 hex digits). */
export function isWalSegment(name: string): boolean {
  return /(^|\/)pg_wal\/[0-9A-F]{24}$/.test(name);
}

/**
 * A WAL segment with `id` in its long page header, where it had `old`
 * (a segment of another cluster, or recycled and unused, is left as it is).
 * Page headers carry no CRC. Changed in place.
 */
export function setSegmentSystemIdentifier(segment: Uint8Array, old: bigint, id: bigint): void {
  if (segment.length < XLP_SYSID + 8) return;
  const view = new DataView(segment.buffer, segment.byteOffset, segment.byteLength);
  if (view.getBigUint64(XLP_SYSID, true) === old) view.setBigUint64(XLP_SYSID, id, true);
}

/** pg_control with `id` as its system identifier and its CRC made valid again (a copy). */
export function withSystemIdentifier(control: Uint8Array, id: bigint): Uint8Array {
  const at = crcOffset(control);
  const out = control.slice();
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setBigUint64(0, id, true);
  view.setUint32(at, crc32c(out, at), true);
  return out;
}
