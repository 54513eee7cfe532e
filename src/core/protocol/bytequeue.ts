/**
 * `ByteQueue`: the receive buffer under the message readers. Chunks are kept
 * as pushed; a message that lies inside one chunk is returned as a subarray,
 * one that spans chunks is copied into a buffer from the caller's allocator.
 * Internal to the protocol package.
 */

/** Allocates a buffer of at least `n` bytes for a message body. */
export type Allocator = (n: number) => Uint8Array;

const EMPTY = new Uint8Array(0);

/** A FIFO of byte chunks with peeking across chunk boundaries. */
export class ByteQueue {
  #chunks: Uint8Array[] = [];
  #first = 0;
  #head = 0;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#size += chunk.length;
  }

  /** The byte `i` positions after the head; the caller ensures `i < size`. */
  peekByte(i: number): number {
    let at = this.#head + i;
    for (let c = this.#first;; c++) {
      const chunk = this.#chunks[c] as Uint8Array;
      if (at < chunk.length) return chunk[at] as number;
      at -= chunk.length;
    }
  }

  /** A signed big-endian int32 at offset `i`; the caller ensures `i + 4 <= size`. */
  peekInt32(i: number): number {
    const chunk = this.#chunks[this.#first] as Uint8Array;
    const at = this.#head + i;
    if (at + 4 <= chunk.length) {
      return ((chunk[at] as number) << 24) | ((chunk[at + 1] as number) << 16) |
        ((chunk[at + 2] as number) << 8) | (chunk[at + 3] as number);
    }
    return (this.peekByte(i) << 24) | (this.peekByte(i + 1) << 16) |
      (this.peekByte(i + 2) << 8) | this.peekByte(i + 3);
  }

  #advanceChunk(): void {
    this.#chunks[this.#first] = EMPTY; // let the chunk be collected
    this.#first++;
    this.#head = 0;
    if (this.#first === this.#chunks.length) {
      this.#chunks.length = 0;
      this.#first = 0;
    } else if (this.#first >= 64) {
      this.#chunks.splice(0, this.#first);
      this.#first = 0;
    }
  }

  skip(n: number): void {
    this.#size -= n;
    while (n > 0) {
      const chunk = this.#chunks[this.#first] as Uint8Array;
      const avail = chunk.length - this.#head;
      if (n < avail) {
        this.#head += n;
        return;
      }
      n -= avail;
      this.#advanceChunk();
    }
  }

  /** Removes `n` bytes: a subarray when one chunk holds them, else a copy. */
  take(n: number, allocate: Allocator): Uint8Array {
    if (n === 0) return EMPTY;
    const chunk = this.#chunks[this.#first] as Uint8Array;
    const avail = chunk.length - this.#head;
    if (n <= avail) {
      const out = chunk.subarray(this.#head, this.#head + n);
      this.#size -= n;
      this.#head += n;
      if (this.#head === chunk.length) this.#advanceChunk();
      return out;
    }
    const buf = allocate(n);
    if (buf.length < n) throw new RangeError(`Allocator returned ${buf.length} bytes, need ${n}`);
    let off = 0;
    while (off < n) {
      const c = this.#chunks[this.#first] as Uint8Array;
      const part = Math.min(c.length - this.#head, n - off);
      buf.set(c.subarray(this.#head, this.#head + part), off);
      off += part;
      this.#head += part;
      if (this.#head === c.length) this.#advanceChunk();
    }
    this.#size -= n;
    return buf.length === n ? buf : buf.subarray(0, n);
  }
}
