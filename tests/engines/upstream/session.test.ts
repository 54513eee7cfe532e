/**
 * The upstream relay against a fake upstream (no sockets): answers are
 * relayed byte for byte however the upstream's bytes are split, an exec
 * resolves at the ReadyForQuery it is owed or when COPY data is wanted,
 * idle messages go to onAsync, and bytes no PostgreSQL sends, or an
 * upstream that hangs up, end the session with a FATAL and never throw.
 * Also the startup exchange: SCRAM against pgts's own server side, and
 * garbage or unsupported requests as clean FATAL errors.
 */

import { describe, expect, test } from "bun:test";
import { buildScramSecret, parseScramSecret, ScramExchange } from "../../../src/core/auth/scram.ts";
import type { Connection } from "../../../src/core/adapter.ts";
import { isPgError, type PgError } from "../../../src/core/elog.ts";
import { openUpstream } from "../../../src/engines/upstream/connect.ts";
import { ScramClient } from "../../../src/engines/upstream/scram-client.ts";
import { UpstreamSession } from "../../../src/engines/upstream/session.ts";
import { parseUpstreamUrl } from "../../../src/engines/upstream/url.ts";

const enc = new TextEncoder();

function msg(type: string, body: Uint8Array | string = new Uint8Array(0)): Uint8Array {
  const b = typeof body === "string" ? enc.encode(body) : body;
  const out = new Uint8Array(5 + b.length);
  out[0] = type.charCodeAt(0);
  new DataView(out.buffer).setInt32(1, b.length + 4);
  out.set(b, 5);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const int32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, n);
  return b;
};

const rfq = (s: string) => msg("Z", s);
const errorFields = (sev: string, code: string, text: string) =>
  enc.encode(`S${sev}\0V${sev}\0C${code}\0M${text}\0\0`);

class FakeConn implements Connection {
  readonly remote = { family: "tcp", address: "127.0.0.1", port: 5432 } as const;
  onData: ((chunk: Uint8Array) => void) | null = null;
  onClose: (() => void) | null = null;
  written: Uint8Array[] = [];
  closed = false;
  onWrite: ((bytes: Uint8Array) => void) | null = null;
  resume(): void {}
  pause(): void {}
  write(bytes: Uint8Array): boolean {
    this.written.push(bytes.slice());
    this.onWrite?.(bytes);
    return true;
  }
  drained(): Promise<void> {
    return Promise.resolve();
  }
  end(): void {
    this.destroy();
  }
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose?.();
  }
  /** The upstream sends. */
  send(bytes: Uint8Array): void {
    this.onData?.(bytes);
  }
}

const target = parseUpstreamUrl("postgres://pgts:pw@127.0.0.1:5432/postgres");

function session(): { s: UpstreamSession; up: FakeConn; cancels: FakeConn[] } {
  const up = new FakeConn();
  const cancels: FakeConn[] = [];
  const s = new UpstreamSession(
    {
      conn: up,
      address: target.address,
      pid: 4242,
      key: int32(99),
      parameterStatus: [],
      rest: new Uint8Array(0),
    },
    {
      target,
      connect: () => {
        const c = new FakeConn();
        cancels.push(c);
        return Promise.resolve(c);
      },
    },
  );
  return { s, up, cancels };
}

describe("the relay", () => {
  test("an answer split at every byte is relayed unchanged and resolves at its ReadyForQuery", async () => {
    const answer = concat(
      msg("T", new Uint8Array(10)),
      msg("D", new Uint8Array(7)),
      msg("C", "SELECT 1\0"),
      rfq("T"),
    );
    const { s, up } = session();
    const got: Uint8Array[] = [];
    let done = false;
    const p = s.exec(msg("Q", "select 1\0"), (b) => got.push(b.slice())).then(() => (done = true));
    for (let i = 0; i < answer.length; i++) {
      expect(done).toBe(false);
      up.send(answer.subarray(i, i + 1));
      await Promise.resolve();
    }
    await p;
    expect(concat(...got)).toEqual(answer);
    expect(s.transactionStatus).toBe("T");
  });

  test("a pipelined batch of three Syncs resolves at the third ReadyForQuery; the rest is async", async () => {
    const { s, up } = session();
    const out: Uint8Array[] = [];
    const async: Uint8Array[] = [];
    s.onAsync = (b) => async.push(b.slice());
    const batch = concat(msg("P", "\0x\0\0\0"), msg("S"), msg("S"), msg("H"), msg("S"));
    let done = false;
    const p = s.exec(batch, (b) => out.push(b.slice())).then(() => (done = true));
    up.send(concat(msg("1"), rfq("I"), rfq("I")));
    await Promise.resolve();
    expect(done).toBe(false);
    const notify = msg("A", concat(int32(7), enc.encode("ch\0hi\0")));
    up.send(concat(rfq("I"), notify));
    await p;
    expect(concat(...out)).toEqual(concat(msg("1"), rfq("I"), rfq("I"), rfq("I")));
    expect(concat(...async)).toEqual(notify);
  });

  test("COPY FROM STDIN: the Query resolves at CopyInResponse, data at once, CopyDone at ReadyForQuery", async () => {
    const { s, up } = session();
    const out: Uint8Array[] = [];
    const o = (b: Uint8Array) => out.push(b.slice());
    const first = s.exec(msg("Q", "copy t from stdin\0"), o);
    up.send(msg("G", new Uint8Array([0, 0, 0])));
    await first;
    await s.exec(msg("d", "1\n"), o);
    await s.exec(concat(msg("d", "2\n"), msg("d", "3\n")), o);
    let done = false;
    const last = s.exec(msg("c"), o).then(() => (done = true));
    await Promise.resolve();
    expect(done).toBe(false);
    up.send(concat(msg("C", "COPY 3\0"), rfq("I")));
    await last;
    expect(up.written.length).toBe(4);
  });

  test("a length word no PostgreSQL sends ends the session with 08P01, without throwing", async () => {
    const { s, up } = session();
    const out: Uint8Array[] = [];
    let ended: PgError | null = null;
    s.onTerminate = (e) => (ended = e);
    const p = s.exec(msg("Q", "select 1\0"), (b) => out.push(b.slice())).catch((e) => e);
    up.send(new Uint8Array([0x54, 0, 0, 0, 2, 1, 2, 3]));
    const e = await p;
    expect(isPgError(e) && e.code).toBe("08P01");
    expect(ended!.code).toBe("08P01");
    expect(String.fromCharCode(concat(...out)[0]!)).toBe("E");
    expect(up.closed).toBe(true);
    // Later calls reject with the same error.
    expect((await s.exec(msg("Q", "select 1\0"), () => {}).catch((x) => x)).code).toBe("08P01");
  });

  test("an upstream that hangs up mid-exec: 08006 to the client, onTerminate, the exec rejects", async () => {
    const { s, up } = session();
    const out: Uint8Array[] = [];
    let ended: PgError | null = null;
    s.onTerminate = (e) => (ended = e);
    const p = s.exec(msg("Q", "select pg_sleep(10)\0"), (b) => out.push(b.slice())).catch((e) => e);
    up.send(msg("T", new Uint8Array(3)).subarray(0, 4)); // half a message, then gone
    up.destroy();
    expect((await p).code).toBe("08006");
    expect(ended!.code).toBe("08006");
    expect(new TextDecoder().decode(concat(...out))).toContain(
      "upstream server closed the connection",
    );
  });

  test("the upstream's own FATAL (57P01) is relayed once and becomes the session's end", () => {
    const { s, up } = session();
    const async: Uint8Array[] = [];
    s.onAsync = (b) => async.push(b.slice());
    let ended: PgError | null = null;
    s.onTerminate = (e) => (ended = e);
    const fatal = msg(
      "E",
      errorFields("FATAL", "57P01", "terminating connection due to administrator command"),
    );
    up.send(fatal);
    up.destroy();
    expect(concat(...async)).toEqual(fatal);
    expect(ended!.code).toBe("57P01");
  });

  test("cancel sends a CancelRequest with the upstream's pid and key on a new connection", async () => {
    const { s, cancels } = session();
    s.cancel();
    await new Promise((r) => setTimeout(r, 0));
    expect(cancels.length).toBe(1);
    const w = cancels[0]!.written[0]!;
    const v = new DataView(w.buffer, w.byteOffset, w.byteLength);
    expect([v.getInt32(0), v.getInt32(4), v.getInt32(8), v.getInt32(12)]).toEqual([
      16,
      80877102,
      4242,
      99,
    ]);
  });

  test("close sends Terminate and resolves when the socket closes, even from within end()", async () => {
    // FakeConn reports its close from within end(), as Bun's sockets do: a
    // close() that listened only after end() waited out its 5 s timeout.
    const { s, up } = session();
    let onTerminate = false;
    s.onTerminate = () => (onTerminate = true);
    const closed = await Promise.race([
      s.close().then(() => "closed"),
      new Promise((r) => setTimeout(() => r("still waiting"), 1_000)),
    ]);
    expect(closed).toBe("closed");
    expect(up.written).toEqual([msg("X")]);
    expect(onTerminate).toBe(false);
    expect(await s.exec(msg("Q", "select 1\0"), () => {}).then(() => null, (e) => e.code))
      .toBe("08003");
  });
});

describe("the pass-through (relay)", () => {
  test("a Query split at every byte goes up unchanged and is owed only once whole", async () => {
    const { s, up } = session();
    const query = msg("Q", "select 1\0");
    for (let i = 0; i < query.length - 1; i++) {
      // Nothing is owed for part of a message: each call resolves at once.
      expect(await s.relay(query.subarray(i, i + 1), () => {})).toBe(true);
    }
    const out: Uint8Array[] = [];
    let done = false;
    const p = s.relay(query.subarray(query.length - 1), (b) => out.push(b.slice())).then((more) => {
      done = true;
      return more;
    });
    await Promise.resolve();
    expect(done).toBe(false);
    expect(concat(...up.written)).toEqual(query);
    up.send(concat(msg("C", "SELECT 1\0"), rfq("I")));
    expect(await p).toBe(true);
    expect(concat(...out)).toEqual(concat(msg("C", "SELECT 1\0"), rfq("I")));
  });

  test("a Terminate after a pipelined Query: the Query is answered, the Terminate not relayed", async () => {
    const { s, up } = session();
    const query = msg("Q", "select 1\0");
    const p = s.relay(concat(query, msg("X"), msg("Q", "select 2\0")), () => {});
    up.send(rfq("I"));
    expect(await p).toBe(false);
    expect(concat(...up.written)).toEqual(query);
  });

  test("a Terminate alone ends at once; close then hangs up with one Terminate", async () => {
    const { s, up } = session();
    expect(await s.relay(msg("X"), () => {})).toBe(false);
    expect(up.written.length).toBe(0);
    await s.close();
    expect(concat(...up.written)).toEqual(msg("X"));
  });

  test("close after part of a message hangs up without a Terminate (it would complete the message)", async () => {
    const { s, up } = session();
    const query = msg("Q", "select 1\0");
    expect(await s.relay(query.subarray(0, 7), () => {})).toBe(true);
    await s.close();
    expect(concat(...up.written)).toEqual(query.subarray(0, 7));
    expect(up.closed).toBe(true);
  });

  test("COPY FROM STDIN in arbitrary pieces: resolves at CopyInResponse, then at CopyDone's ReadyForQuery", async () => {
    const { s, up } = session();
    const first = s.relay(msg("Q", "copy t from stdin\0"), () => {});
    up.send(msg("G", new Uint8Array([0, 0, 0])));
    expect(await first).toBe(true);
    // The data and the CopyDone, split across a message boundary and inside a header.
    const rest = concat(msg("d", "1\n"), msg("d", "2\n"), msg("c"), msg("S"));
    expect(await s.relay(rest.subarray(0, 9), () => {})).toBe(true);
    expect(await s.relay(rest.subarray(9, 14), () => {})).toBe(true);
    let done = false;
    const last = s.relay(rest.subarray(14), () => {}).then(() => (done = true));
    await Promise.resolve();
    expect(done).toBe(false);
    // CopyDone's answer; the Sync after it is owed a ReadyForQuery of its own.
    up.send(concat(msg("C", "COPY 2\0"), rfq("I")));
    await Promise.resolve();
    expect(done).toBe(false);
    up.send(rfq("I"));
    await last;
    expect(concat(...up.written)).toEqual(concat(msg("Q", "copy t from stdin\0"), rest));
  });

  test("a length word below 4 is relayed and the upstream's FATAL ends the session", async () => {
    const { s, up } = session();
    let ended: PgError | null = null;
    s.onTerminate = (e) => (ended = e);
    const garbage = new Uint8Array([0x51, 0, 0, 0, 1, 0x58, 0, 0, 0, 4]);
    // Nothing can be counted any more, and the X inside is no Terminate.
    expect(await s.relay(garbage, () => {})).toBe(true);
    expect(concat(...up.written)).toEqual(garbage);
    up.send(msg("E", errorFields("FATAL", "08P01", "invalid message length")));
    up.destroy();
    expect(ended!.code).toBe("08P01");
    expect((await s.relay(msg("Q", "select 1\0"), () => {}).catch((x) => x)).code).toBe("08P01");
  });
});

describe("startup", () => {
  test("the SCRAM client satisfies pgts's own SCRAM server and checks its signature", async () => {
    const secret = parseScramSecret(await buildScramSecret("pw"))!;
    const server = new ScramExchange(secret, { user: "pgts" });
    const client = new ScramClient("pw");
    const serverFirst = await server.clientFirst(client.clientFirst());
    const result = await server.clientFinal(await client.clientFinal(serverFirst));
    expect(result.ok).toBe(true);
    if (result.ok) client.verifyServerFinal(result.serverFinal);
    const forged = new ScramClient("pw");
    const sf = await new ScramExchange(secret, { user: "pgts" }).clientFirst(forged.clientFirst());
    await forged.clientFinal(sf);
    expect(() => forged.verifyServerFinal(enc.encode("v=AAAA"))).toThrow(
      "incorrect server signature",
    );
  });

  async function startWith(reply: (up: FakeConn) => void): Promise<unknown> {
    const up = new FakeConn();
    let first = true;
    up.onWrite = () => {
      if (!first) return;
      first = false;
      queueMicrotask(() => reply(up));
    };
    return await openUpstream(target, {
      connect: () => Promise.resolve(up),
      database: "postgres",
      params: {},
      timeoutMs: 2000,
    }).catch((e) => e);
  }

  test("a startup answered with garbage is 08P01, not a crash", async () => {
    const e = await startWith((up) => up.send(new Uint8Array([0x52, 0xff, 0xff, 0xff, 0xff])));
    expect(isPgError(e) && e.code).toBe("08P01");
  });

  test("an authentication method pgts does not speak (GSS) is 08001 with the reason", async () => {
    const e = await startWith((up) => up.send(msg("R", int32(7))));
    expect(isPgError(e) && e.code).toBe("08001");
    expect((e as Error).message).toContain("authentication method 7");
  });

  test("an upstream that hangs up during startup is 08006; one that refuses to connect is 08001", async () => {
    const e = await startWith((up) => up.destroy());
    expect(isPgError(e) && e.code).toBe("08006");
    const refused = await openUpstream(target, {
      connect: () => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:5432")),
      database: "postgres",
      params: {},
      timeoutMs: 2000,
    }).catch((x) => x);
    expect(refused.code).toBe("08001");
    expect(refused.message).toContain("ECONNREFUSED");
  });

  test("a successful startup keeps the key and ParameterStatus", async () => {
    const up = new FakeConn();
    up.onWrite = () =>
      queueMicrotask(() =>
        up.send(concat(
          msg("R", int32(0)),
          msg("S", "server_version\x0015.8\0"),
          msg("K", concat(int32(77), int32(1234))),
          rfq("I"),
        ))
      );
    const u = await openUpstream(target, {
      connect: () => Promise.resolve(up),
      database: "postgres",
      params: { application_name: "x" },
      timeoutMs: 2000,
    });
    expect(u.pid).toBe(77);
    expect(u.parameterStatus).toEqual([["server_version", "15.8"]]);
    expect(new TextDecoder().decode(up.written[0]!)).toContain("user\0pgts\0database\0postgres");
  });
});

describe("the engine URL", () => {
  test("libpq's forms: TCP with defaults, a socket directory, percent-encoded passwords, TLS parameters", () => {
    expect(parseUpstreamUrl("postgres://u@db.example").address).toEqual({
      family: "tcp",
      host: "db.example",
      port: 5432,
    });
    const t = parseUpstreamUrl("postgresql://u:p%40ss@/app?host=/var/run/postgresql&port=6543");
    expect(t.address).toEqual({ family: "unix", path: "/var/run/postgresql/.s.PGSQL.6543" });
    expect(t.password).toBe("p@ss");
    expect(t.database).toBe("app");
    expect(parseUpstreamUrl("postgres://u@db.example").ssl.mode).toBe("prefer");
    const v = parseUpstreamUrl(
      "postgres://u@db.example/db?sslmode=verify-full&sslrootcert=/ca.pem&hostaddr=10.0.0.1&sslsni=0",
    );
    expect(v.address).toEqual({ family: "tcp", host: "10.0.0.1", port: 5432 });
    expect(v.ssl).toEqual({
      mode: "verify-full",
      rootCert: "/ca.pem",
      host: "db.example",
      sni: false,
      channelBinding: "prefer",
    });
    expect(parseUpstreamUrl("postgres://u@h/db?sslrootcert=system").ssl.mode).toBe("verify-full");
    expect(() => parseUpstreamUrl("postgres://u@h/db?sslmode=sometimes")).toThrow(RangeError);
    expect(() => parseUpstreamUrl("postgres://u@h/db?sslmode=require&sslrootcert=system")).toThrow(
      RangeError,
    );
    expect(() => parseUpstreamUrl("postgres://h/db")).toThrow("must name a user");
    const m = parseUpstreamUrl(
      "postgres://u@h1:5433,[::1]:5434,h3/db?target_session_attrs=primary",
    );
    expect(m.hosts?.map((h) => h.address)).toEqual([
      { family: "tcp", host: "h1", port: 5433 },
      { family: "tcp", host: "::1", port: 5434 },
      { family: "tcp", host: "h3", port: 5432 },
    ]);
    expect(m.targetSessionAttrs).toBe("primary");
    expect(parseUpstreamUrl("postgres://u@/db?host=a,b&port=1,2").hosts?.map((h) => h.display))
      .toEqual(["a:1", "b:2"]);
    expect(() => parseUpstreamUrl("postgres://u@h/db?target_session_attrs=any-old")).toThrow(
      RangeError,
    );
  });
});
