/**
 * Raw protocol bytes for engine tests: frontend message builders and a
 * parser for the backend bytes a session returns. Only for sequences no
 * client library sends (unsynced batches, interleaving by hand).
 */

const enc = new TextEncoder();
const dec = new TextDecoder();

function msg(type: string, ...parts: Array<string | Uint8Array>): Uint8Array {
  const bodies = parts.map((p) => typeof p === "string" ? enc.encode(p + "\0") : p);
  const n = bodies.reduce((a, b) => a + b.length, 0);
  const out = new Uint8Array(5 + n);
  out[0] = type.charCodeAt(0);
  new DataView(out.buffer).setInt32(1, 4 + n);
  let at = 5;
  for (const b of bodies) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

export const FE = {
  query: (sql: string) => msg("Q", sql),
  parse: (sql: string, name = "") => msg("P", name, sql, new Uint8Array(2)),
  bind: (portal = "", stmt = "") => msg("B", portal, stmt, new Uint8Array(6)),
  describePortal: (portal = "") => msg("D", "P" + portal),
  execute: (portal = "") => msg("E", portal, new Uint8Array(4)),
  sync: () => msg("S"),
  flush: () => msg("H"),
  terminate: () => msg("X"),
  copyData: (s: string) => msg("d", enc.encode(s)),
  copyDone: () => msg("c"),
};

export function batch(...m: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(m.reduce((a, b) => a + b.length, 0));
  let at = 0;
  for (const b of m) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

export interface BackendMessage {
  type: string;
  body: Uint8Array;
}

export function parseBackend(buf: Uint8Array): BackendMessage[] {
  const out: BackendMessage[] = [];
  let at = 0;
  while (at + 5 <= buf.length) {
    const len = new DataView(buf.buffer, buf.byteOffset + at + 1).getInt32(0);
    out.push({ type: String.fromCharCode(buf[at]!), body: buf.slice(at + 5, at + 1 + len) });
    at += 1 + len;
  }
  return out;
}

/** Collects a session's output; `types` is the message type letters, in order. */
export class Collector {
  #parts: Uint8Array[] = [];
  readonly out = (b: Uint8Array) => {
    this.#parts.push(b.slice());
  };
  get messages(): BackendMessage[] {
    return parseBackend(batch(...this.#parts));
  }
  get types(): string {
    return this.messages.map((m) => m.type).join("");
  }
  /** Text of the first column of the DataRows. */
  get values(): Array<string | null> {
    return this.messages.filter((m) => m.type === "D").map((m) => {
      const v = new DataView(m.body.buffer, m.body.byteOffset);
      const len = v.getInt32(2);
      return len < 0 ? null : dec.decode(m.body.subarray(6, 6 + len));
    });
  }
  /** Fields of the ErrorResponses: {C, M, S...}. */
  get errors(): Array<Record<string, string>> {
    return this.messages.filter((m) => m.type === "E").map((m) => {
      const f: Record<string, string> = {};
      for (const part of dec.decode(m.body).split("\0")) if (part) f[part[0]!] = part.slice(1);
      return f;
    });
  }
  clear(): void {
    this.#parts = [];
  }
}
