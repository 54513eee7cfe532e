/**
 * Does this process still hold a given socket? Maps /proc/self/fd links
 * (socket:[inode]) to /proc/net/{tcp,tcp6,unix}. Used to prove a handed-off
 * client left the postmaster. Linux only.
 */

import fs from "node:fs";

function ownSocketInodes(): Set<string> {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync("/proc/self/fd")) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // The fd closed while we looked.
    }
  }
  return inodes;
}

/** How many fds of this process are the TCP socket from localPort to remotePort. */
export function tcpSocketFds(localPort: number, remotePort: number): number {
  const want = new Set<string>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = fs.readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const lp = parseInt(cols[1]!.split(":")[1]!, 16);
      const rp = parseInt(cols[2]!.split(":")[1]!, 16);
      if (lp === localPort && rp === remotePort) want.add(cols[9]!);
    }
  }
  const own = ownSocketInodes();
  return [...want].filter((i) => own.has(i)).length;
}

/** How many fds of this process are unix sockets bound to `path` (listener included). */
export function unixSocketFds(path: string): number {
  const want = new Set<string>();
  const text = fs.readFileSync("/proc/net/unix", "utf8");
  for (const line of text.split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length >= 8 && cols[7] === path) want.add(cols[6]!);
  }
  const own = ownSocketInodes();
  return [...want].filter((i) => own.has(i)).length;
}
