/**
 * Numeric IP addresses for pg_hba.conf matching: parsing IPv4 and IPv6
 * literals (embedded IPv4 and zone ids included) to bytes, CIDR masks, and
 * the masked comparison PostgreSQL's check_ip performs. No name resolution.
 */

export interface IpAddress {
  family: 4 | 6;
  bytes: Uint8Array;
}

export function parseIPv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i] as string;
    if (!/^\d{1,3}$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

export function parseIPv6(text: string): Uint8Array | null {
  const pct = text.indexOf("%");
  if (pct >= 0) text = text.slice(0, pct); // zone id: not part of the address
  if (text.length === 0 || !/^[0-9A-Fa-f:.]+$/.test(text)) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (s: string): number[] | null => {
    if (s === "") return [];
    const out: number[] = [];
    const parts = s.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i] as string;
      if (i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIPv4(p);
        if (v4 === null) return null;
        out.push(((v4[0] as number) << 8) | (v4[1] as number));
        out.push(((v4[2] as number) << 8) | (v4[3] as number));
      } else {
        if (!/^[0-9A-Fa-f]{1,4}$/.test(p)) return null;
        out.push(parseInt(p, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0] as string);
  const tail = halves.length === 2 ? groups(halves[1] as string) : [];
  if (head === null || tail === null) return null;
  const total = head.length + tail.length;
  if (halves.length === 2 ? total > 7 : total !== 8) return null;
  const all = [...head, ...new Array<number>(8 - total).fill(0), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[i * 2] = (all[i] as number) >> 8;
    out[i * 2 + 1] = (all[i] as number) & 0xff;
  }
  return out;
}

/** Parses an IPv4 or IPv6 literal; null if it is neither. */
export function parseIp(text: string): IpAddress | null {
  const v4 = parseIPv4(text);
  if (v4 !== null) return { family: 4, bytes: v4 };
  const v6 = parseIPv6(text);
  if (v6 !== null) return { family: 6, bytes: v6 };
  return null;
}

/** A netmask of `bits` leading ones, or null when `bits` is out of range. */
export function cidrMask(bits: string, family: 4 | 6): Uint8Array | null {
  if (!/^\d+$/.test(bits)) return null;
  const n = Number(bits);
  const len = family === 4 ? 4 : 16;
  if (n > len * 8) return null;
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) {
    const rest = n - i * 8;
    out[i] = rest >= 8 ? 0xff : rest <= 0 ? 0 : (0xff << (8 - rest)) & 0xff;
  }
  return out;
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d), or null. */
export function unmapIPv4(addr: IpAddress): IpAddress | null {
  if (addr.family !== 6) return null;
  const b = addr.bytes;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return null;
  if (b[10] !== 0xff || b[11] !== 0xff) return null;
  return { family: 4, bytes: b.slice(12) };
}

/**
 * A socket address as PostgreSQL would show it: an IPv4 client of a
 * dual-stack IPv6 socket (::ffff:a.b.c.d) as its IPv4 address. PostgreSQL
 * never sees such addresses, since it sets IPV6_V6ONLY on its IPv6 sockets;
 * Deno cannot, and serves IPv4 clients on its "::" socket.
 */
export function unmappedText(address: string): string {
  const ip = parseIp(address);
  const v4 = ip === null ? null : unmapIPv4(ip);
  return v4 === null ? address : v4.bytes.join(".");
}

/** True when `addr` lies in the network `net`/`mask` (same family only). */
export function inNetwork(addr: IpAddress, net: IpAddress, mask: Uint8Array): boolean {
  if (addr.family !== net.family) return false;
  for (let i = 0; i < mask.length; i++) {
    const m = mask[i] as number;
    if ((((addr.bytes[i] as number) ^ (net.bytes[i] as number)) & m) !== 0) return false;
  }
  return true;
}
