import { describe, expect, test } from "bun:test";
import {
  FE,
  isCommError,
  MessageReader,
  MessageWriter,
  PQ_SMALL_MESSAGE_LIMIT,
  writeQuery,
  writeStartupMessage,
  writeSync,
  writeTerminate,
} from "../../../src/core/protocol/mod.ts";
import { isPgError } from "../../../src/core/elog.ts";

function thrown(fn: () => unknown): { code: string; message: string; comm: boolean } {
  try {
    fn();
  } catch (e) {
    if (!isPgError(e)) throw e;
    return { code: e.code, message: e.message, comm: isCommError(e) };
  }
  throw new Error("expected a PgError");
}

const startup = MessageWriter.encode((w) =>
  writeStartupMessage(w, { user: "alice", database: "db" })
);
const stream = MessageWriter.encode((w) => {
  writeQuery(w, "select 1");
  writeSync(w);
  writeQuery(w, "select 'héllo'");
  writeTerminate(w);
});

function drain(r: MessageReader) {
  const out: { type: number; body: number[] }[] = [];
  for (let m = r.read(); m !== null; m = r.read()) out.push({ type: m.type, body: [...m.body] });
  return out;
}

describe("frontend framing", () => {
  test("endsInTerminate: whole unread messages that end in Terminate, in any chunks, and nothing else", () => {
    const r = new MessageReader();
    expect(r.endsInTerminate()).toBe(false);
    // Query, Sync, Query, Terminate, split across chunks mid-message.
    r.push(stream.subarray(0, 7));
    expect(r.endsInTerminate()).toBe(false);
    r.push(stream.subarray(7, stream.length - 2));
    expect(r.endsInTerminate()).toBe(false); // the Terminate is incomplete
    r.push(stream.subarray(stream.length - 2));
    expect(r.endsInTerminate()).toBe(true);
    // Read up to the Terminate: still true; read it too: false.
    for (let i = 0; i < 3; i++) r.read();
    expect(r.endsInTerminate()).toBe(true);
    r.read();
    expect(r.endsInTerminate()).toBe(false);
    // A Query, then a Terminate split mid-way: not yet a goodbye.
    r.push(MessageWriter.encode((w) => writeQuery(w, "select 2")));
    const bye = MessageWriter.encode((w) => writeTerminate(w));
    r.push(bye.subarray(0, 3));
    expect(r.endsInTerminate()).toBe(false);
    r.push(bye.subarray(3));
    expect(r.endsInTerminate()).toBe(true);
  });

  test("a startup packet split into single bytes is assembled once complete", () => {
    const r = new MessageReader();
    for (let i = 0; i < startup.length - 1; i++) {
      r.push(startup.subarray(i, i + 1));
      expect(r.readStartupPacket()).toBeNull();
    }
    r.push(startup.subarray(startup.length - 1));
    const body = r.readStartupPacket();
    expect(body).not.toBeNull();
    expect([...body!]).toEqual([...startup.subarray(4)]);
    expect(r.buffered).toBe(0);
  });

  test("many messages in one chunk come out in order as subarrays of that chunk", () => {
    const r = new MessageReader();
    r.push(stream);
    const msgs: { type: number; body: Uint8Array }[] = [];
    for (let m = r.read(); m !== null; m = r.read()) msgs.push(m);
    expect(msgs.map((m) => String.fromCharCode(m.type))).toEqual(["Q", "S", "Q", "X"]);
    expect(msgs[0]!.body.buffer).toBe(stream.buffer);
  });

  test("every split point of a stream yields the same messages", () => {
    const whole = new MessageReader();
    whole.push(stream);
    const expected = drain(whole);
    for (let cut = 1; cut < stream.length; cut++) {
      const r = new MessageReader();
      const got = [];
      r.push(stream.slice(0, cut));
      got.push(...drain(r));
      r.push(stream.slice(cut));
      got.push(...drain(r));
      expect(got).toEqual(expected);
    }
  });

  test("a message spanning chunks is assembled in a buffer from the allocator", () => {
    const sizes: number[] = [];
    const r = new MessageReader({
      allocate: (n) => {
        sizes.push(n);
        return new Uint8Array(n + 16);
      },
    });
    r.push(stream.slice(0, 7));
    expect(r.read()).toBeNull();
    r.push(stream.slice(7));
    const m = r.read()!;
    expect(new TextDecoder().decode(m.body)).toBe("select 1\0");
    expect(m.body.length).toBe(9);
    expect(sizes).toEqual([9]);
  });

  test("an unknown type byte is FATAL 08P01 before its length arrives", () => {
    const r = new MessageReader();
    r.push(new Uint8Array([0x7a]));
    expect(thrown(() => r.read())).toEqual({
      code: "08P01",
      message: "invalid frontend message type 122",
      comm: false,
    });
  });

  test("a length below 4 is an invalid message length, logged only", () => {
    const r = new MessageReader();
    r.push(new Uint8Array([FE.Query, 0, 0, 0, 3]));
    expect(thrown(() => r.read())).toEqual({
      code: "08P01",
      message: "invalid message length",
      comm: true,
    });
  });

  test("a Sync longer than the small-message limit is rejected", () => {
    const r = new MessageReader();
    const len = PQ_SMALL_MESSAGE_LIMIT + 1;
    r.push(new Uint8Array([FE.Sync, len >>> 24, (len >>> 16) & 255, (len >>> 8) & 255, len & 255]));
    expect(thrown(() => r.read()).message).toBe("invalid message length");
  });

  test("a Query over the configured maximum is rejected", () => {
    const r = new MessageReader({ maxMessageSize: 64 });
    r.push(MessageWriter.encode((w) => writeQuery(w, "x".repeat(100))));
    expect(thrown(() => r.read())).toEqual({
      code: "08P01",
      message: "invalid message length",
      comm: true,
    });
    const ok = new MessageReader({ maxMessageSize: 64 });
    ok.push(MessageWriter.encode((w) => writeQuery(w, "x".repeat(50))));
    expect(ok.read()?.type).toBe(FE.Query);
  });

  test("startup packet lengths out of range are invalid", () => {
    for (const len of [0, 7, 10005, 0x7fffffff, -1]) {
      const r = new MessageReader();
      const b = new Uint8Array(8);
      new DataView(b.buffer).setInt32(0, len);
      r.push(b);
      expect(thrown(() => r.readStartupPacket())).toEqual({
        code: "08P01",
        message: "invalid length of startup packet",
        comm: true,
      });
    }
  });

  test("garbage before the startup packet (an HTTP request) is an invalid length", () => {
    const r = new MessageReader();
    r.push(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    expect(thrown(() => r.readStartupPacket()).message).toBe("invalid length of startup packet");
  });

  test("authentication responses must be 'p' messages", () => {
    const r = new MessageReader();
    r.push(MessageWriter.encode((w) => writeQuery(w, "select 1")));
    expect(thrown(() => r.readAuthResponse("password"))).toEqual({
      code: "08P01",
      message: "expected password response, got message type 81",
      comm: false,
    });
    expect(thrown(() => r.readAuthResponse("sasl")).message).toBe(
      "expected SASL response, got message type 81",
    );
  });

  test("EOF inside a packet reports what PostgreSQL logs", () => {
    const a = new MessageReader();
    a.push(startup.subarray(0, 6));
    expect(a.readStartupPacket()).toBeNull();
    expect(a.eof()?.message).toBe("incomplete startup packet");
    const b = new MessageReader();
    b.push(stream.subarray(0, 3));
    expect(b.read()).toBeNull();
    expect(b.eof()?.message).toBe("unexpected EOF within message length word");
    const c = new MessageReader();
    c.push(stream.subarray(0, 8));
    expect(c.read()).toBeNull();
    expect(c.eof()?.message).toBe("incomplete message from client");
    expect(new MessageReader().eof()).toBeNull();
  });
});

describe("MessageWriter", () => {
  test("coalesces many messages and empties on take", () => {
    const w = new MessageWriter({ initialSize: 16 });
    for (let i = 0; i < 1000; i++) writeQuery(w, `select ${i}`);
    const bytes = w.take();
    expect(w.length).toBe(0);
    const r = new MessageReader();
    r.push(bytes);
    let n = 0;
    while (r.read() !== null) n++;
    expect(n).toBe(1000);
  });

  test("refuses to take output in the middle of a message", () => {
    const w = new MessageWriter();
    w.begin(FE.Query);
    expect(() => w.take()).toThrow(TypeError);
  });
});
