/**
 * `MessageWriter`: a growable output buffer that coalesces many protocol
 * messages into one `Uint8Array` per flush, the counterpart of PostgreSQL's
 * pq_beginmessage / pq_send* / pq_endmessage over PqSendBuffer.
 *
 * A message is written in place: `begin(type)` reserves the length word,
 * field writers append, `end()` patches the length. Strings are encoded with
 * `TextEncoder.encodeInto` straight into the buffer. The writer owns no
 * socket; `take()` hands the bytes to whoever writes them.
 */

const encoder = new TextEncoder();

export class MessageWriter {
  #buf: Uint8Array;
  #view: DataView;
  #pos = 0;
  /** Offset of the current message's length word, or -1 outside a message. */
  #start = -1;

  constructor(options: { initialSize?: number } = {}) {
    const size = options.initialSize ?? 8192;
    if (!Number.isInteger(size) || size < 16) {
      throw new RangeError("initialSize must be an integer of at least 16");
    }
    this.#buf = new Uint8Array(size);
    this.#view = new DataView(this.#buf.buffer);
  }

  /** Builds one or more messages and returns their bytes. */
  static encode(build: (w: MessageWriter) => void): Uint8Array {
    const w = new MessageWriter({ initialSize: 256 });
    build(w);
    return w.take();
  }

  /** Bytes written and not yet taken. */
  get length(): number {
    return this.#pos;
  }

  #ensure(extra: number): void {
    const need = this.#pos + extra;
    if (need <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#pos));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  /** Starts a message with a type byte (pq_beginmessage). */
  begin(type: number): this {
    if (this.#start !== -1) throw new TypeError("Cannot begin a message inside another message");
    this.#ensure(5);
    this.#buf[this.#pos++] = type;
    this.#start = this.#pos;
    this.#pos += 4;
    return this;
  }

  /** Starts an untyped message (the startup-phase packets a client sends). */
  beginUntyped(): this {
    if (this.#start !== -1) throw new TypeError("Cannot begin a message inside another message");
    this.#ensure(4);
    this.#start = this.#pos;
    this.#pos += 4;
    return this;
  }

  /** Finishes the current message by patching its length word (pq_endmessage). */
  end(): this {
    if (this.#start === -1) throw new TypeError("No message to end");
    this.#view.setInt32(this.#start, this.#pos - this.#start);
    this.#start = -1;
    return this;
  }

  byte(v: number): this {
    this.#ensure(1);
    this.#buf[this.#pos++] = v;
    return this;
  }

  int16(v: number): this {
    this.#ensure(2);
    this.#view.setInt16(this.#pos, v);
    this.#pos += 2;
    return this;
  }

  int32(v: number): this {
    this.#ensure(4);
    this.#view.setInt32(this.#pos, v);
    this.#pos += 4;
    return this;
  }

  uint32(v: number): this {
    this.#ensure(4);
    this.#view.setUint32(this.#pos, v);
    this.#pos += 4;
    return this;
  }

  bytes(v: Uint8Array): this {
    this.#ensure(v.length);
    this.#buf.set(v, this.#pos);
    this.#pos += v.length;
    return this;
  }

  /** UTF-8 text without a terminator; returns the byte count via the writer position. */
  text(v: string): this {
    // encodeInto needs at most 3 bytes per UTF-16 code unit.
    this.#ensure(v.length * 3);
    this.#pos += encoder.encodeInto(v, this.#buf.subarray(this.#pos)).written;
    return this;
  }

  /** NUL-terminated UTF-8 string (pq_sendstring). */
  string(v: string): this {
    this.text(v);
    return this.byte(0);
  }

  /**
   * A length-prefixed value as in DataRow and Bind: int32 length then bytes,
   * or -1 for NULL. Strings are written as UTF-8 text.
   */
  value(v: Uint8Array | string | null): this {
    if (v === null) return this.int32(-1);
    if (typeof v !== "string") return this.int32(v.length).bytes(v);
    const at = this.#pos;
    this.int32(0).text(v);
    this.#view.setInt32(at, this.#pos - at - 4);
    return this;
  }

  /** Returns a copy of everything written and empties the writer. */
  take(): Uint8Array {
    if (this.#start !== -1) throw new TypeError("Cannot take output in the middle of a message");
    const out = this.#buf.slice(0, this.#pos);
    this.#pos = 0;
    return out;
  }

  /** Discards everything written (after an error mid-message, for instance). */
  reset(): void {
    this.#pos = 0;
    this.#start = -1;
  }
}
