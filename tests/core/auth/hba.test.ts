import { describe, expect, test } from "bun:test";
import {
  type HbaConnection,
  hbaRejectError,
  matchHba,
  noHbaEntryError,
  parseHba,
} from "../../../src/core/auth/mod.ts";
import { PgError } from "../../../src/core/elog.ts";

const conf = `
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             postgres                                trust
local   sameuser        all                                     md5
host    "my db",shop    alice,+admins   10.0.0.0/8              scram-sha-256
host    all             all             192.168.1.0 255.255.255.0 password
hostssl all             all             0.0.0.0/0               trust
hostnossl replication   repl            127.0.0.1/32            md5
host    all             bob             ::1/128                 md5
host    all             carol           2001:db8::/32           reject
host    all             all             all                     scram-sha-256 # catch-all
`;

const lines = parseHba(conf, { fileName: "/etc/pg_hba.conf" });

async function lineFor(conn: HbaConnection): Promise<number | null> {
  return (await matchHba(lines, conn))?.lineNumber ?? null;
}

function configError(text: string) {
  try {
    parseHba(text, { fileName: "hba.conf" });
  } catch (e) {
    const err = e as PgError;
    return { code: err.code, message: err.message, context: err.fields.context };
  }
  throw new Error("expected an error");
}

describe("pg_hba.conf parsing", () => {
  test("reads every line with its fields", () => {
    expect(lines.map((l) => [l.lineNumber, l.connType, l.method])).toEqual([
      [3, "local", "trust"],
      [4, "local", "md5"],
      [5, "host", "scram-sha-256"],
      [6, "host", "password"],
      [7, "hostssl", "trust"],
      [8, "hostnossl", "md5"],
      [9, "host", "md5"],
      [10, "host", "reject"],
      [11, "host", "scram-sha-256"],
    ]);
    expect(lines[2]!.databases).toEqual([
      { value: "my db", quoted: true },
      { value: "shop", quoted: false },
    ]);
    expect(lines[2]!.users.map((t) => t.value)).toEqual(["alice", "+admins"]);
  });

  test("errors name the file and line with PostgreSQL's messages", () => {
    expect(configError("\n\nlocal all")).toEqual({
      code: "F0000",
      message: "end-of-line before role specification",
      context: 'line 3 of configuration file "hba.conf"',
    });
    expect(configError("bogus all all trust").message).toBe('invalid connection type "bogus"');
    expect(configError("local").message).toBe("end-of-line before database specification");
    expect(configError("local all all").message).toBe("end-of-line before authentication method");
    expect(configError("host all all").message).toBe(
      "end-of-line before IP address specification",
    );
    expect(configError("host all all 10.0.0.1 trust").message).toBe(
      'invalid IP mask "trust": Name or service not known',
    );
    expect(configError("host all all 10.0.0.1").message).toBe(
      "end-of-line before netmask specification",
    );
    expect(configError("host all all 10.0.0.0/33 trust").message).toBe(
      'invalid CIDR mask in address "10.0.0.0/33"',
    );
    expect(configError("host all all 10.0.0.1 ffff:: trust").message).toBe(
      "IP address and mask do not match",
    );
    expect(configError("host all all 10.0.0.1/8,::1/128 trust").message).toBe(
      "multiple values specified for host address",
    );
    expect(configError("local all all md5,trust").message).toBe(
      "multiple values specified for authentication type",
    );
    expect(configError("local all all magic").message).toBe(
      'invalid authentication method "magic"',
    );
    expect(configError("local all all trust foo").message).toBe(
      "authentication option not in name=value format: foo",
    );
  });

  test("features pgts does not have are refused clearly, not misread", () => {
    expect(configError("local all all peer").message).toBe(
      'authentication method "peer" is not supported by pgts',
    );
    expect(configError("host all all samenet trust").message).toBe(
      'address "samenet" is not supported by pgts',
    );
    expect(configError("host all all db.example.com trust").message).toBe(
      'host names ("db.example.com") are not supported by pgts',
    );
    expect(configError("host all all db.example.com/24 trust").message).toBe(
      'specifying both host name and CIDR mask is invalid: "db.example.com/24"',
    );
    expect(configError("host all all all md5 map=certmap").message).toBe(
      'authentication option "map" is not supported by pgts',
    );
    expect(configError("local @dbs all trust").message).toBe(
      'file inclusion ("@dbs") is not supported by pgts',
    );
    expect(configError("include other.conf").message).toBe(
      '"include" directives are not supported by pgts',
    );
  });
});

describe("pg_hba.conf matching", () => {
  test("local connections match local lines by user and sameuser", async () => {
    expect(await lineFor({ type: "local", database: "x", user: "postgres" })).toBe(3);
    expect(await lineFor({ type: "local", database: "dave", user: "dave" })).toBe(4);
    expect(await lineFor({ type: "local", database: "other", user: "dave" })).toBeNull();
  });

  test("IPv4 CIDR and address+mask ranges", async () => {
    const host = (address: string, user = "zed", database = "x") =>
      lineFor({ type: "host", address, user, database });
    expect(await host("10.1.2.3", "alice", "shop")).toBe(5);
    expect(await host("10.1.2.3", "alice", "my db")).toBe(5);
    expect(await host("10.1.2.3", "alice", "my")).toBe(11);
    expect(await host("192.168.1.77")).toBe(6);
    expect(await host("192.168.2.77")).toBe(11);
  });

  test("IPv6 ranges, and IPv4-mapped addresses against IPv4 lines", async () => {
    expect(await lineFor({ type: "host", address: "::1", user: "bob", database: "x" })).toBe(9);
    expect(
      await lineFor({ type: "host", address: "2001:db8:0:1::5", user: "carol", database: "x" }),
    ).toBe(10);
    expect(
      await lineFor({ type: "host", address: "::ffff:192.168.1.9", user: "zed", database: "x" }),
    ).toBe(6);
  });

  test("hostssl matches SSL connections only, hostnossl plain ones only; replication only matches replication", async () => {
    const repl = { type: "host" as const, address: "127.0.0.1", user: "repl", database: "x" };
    expect(await lineFor({ ...repl, replication: true })).toBe(8);
    expect(await lineFor({ ...repl, replication: true, ssl: true })).toBeNull();
    expect(await lineFor({ ...repl, ssl: true })).toBe(7);
    expect(await lineFor(repl)).toBe(11);
    const only = parseHba("hostssl all all all trust\nhostnossl all all all reject");
    const conn = { type: "host" as const, address: "1.2.3.4", user: "u", database: "d" };
    expect((await matchHba(only, conn))?.lineNumber).toBe(2);
    expect((await matchHba(only, { ...conn, ssl: false }))?.lineNumber).toBe(2);
    expect((await matchHba(only, { ...conn, ssl: true }))?.lineNumber).toBe(1);
    expect(noHbaEntryError({ host: "1.2.3.4", user: "u", database: "d", ssl: true }).message)
      .toBe('no pg_hba.conf entry for host "1.2.3.4", user "u", database "d", SSL encryption');
  });

  test("cert and clientcert: hostssl lines only, PostgreSQL's messages otherwise", () => {
    const [cert, ca, full] = parseHba(
      "hostssl all all all cert\nhostssl all all all md5 clientcert=verify-ca\n" +
        "hostssl all all all scram-sha-256 clientcert=verify-full",
    );
    expect([cert?.method, cert?.clientcert]).toEqual(["cert", "verify-full"]);
    expect([ca?.method, ca?.clientcert]).toEqual(["md5", "verify-ca"]);
    expect(full?.clientcert).toBe("verify-full");
    expect(configError("host all all all cert").message).toBe(
      "cert authentication is only supported on hostssl connections",
    );
    expect(configError("host all all all md5 clientcert=verify-ca").message).toBe(
      'clientcert can only be configured for "hostssl" rows',
    );
    expect(configError("hostssl all all all cert clientcert=verify-ca").message).toBe(
      'clientcert only accepts "verify-full" when using "cert" authentication',
    );
    expect(configError("hostssl all all all md5 clientcert=no-verify").message).toBe(
      'invalid value for clientcert: "no-verify"',
    );
  });

  test("+group asks the membership callback", async () => {
    const asked: string[] = [];
    const conn: HbaConnection = {
      type: "host",
      address: "10.0.0.9",
      user: "erin",
      database: "shop",
      isMember: (user, role) => {
        asked.push(`${user} in ${role}`);
        return Promise.resolve(role === "admins");
      },
    };
    expect(await lineFor(conn)).toBe(5);
    expect(asked).toEqual(["erin in admins"]);
  });

  test("a membership that does not hold leaves the rest of the line to decide", async () => {
    const lines = parseHba("host samerole +nobody,erin 10.0.0.0/8 trust\nhost all all all reject");
    const conn = (isMember: HbaConnection["isMember"]): HbaConnection => ({
      type: "host",
      address: "10.0.0.9",
      user: "erin",
      database: "shop",
      isMember,
    });
    // samerole: erin is not in "shop", so the first line does not apply.
    expect((await matchHba(lines, conn(() => Promise.resolve(false))))?.method).toBe("reject");
    // Once erin is in "shop": "+nobody" fails, the next token "erin" admits her.
    const asked: string[] = [];
    const member = (_user: string, role: string) => {
      asked.push(role);
      return role === "shop" ? Promise.resolve(true) : false;
    };
    expect((await matchHba(lines, conn(member)))?.method).toBe("trust");
    expect(asked).toEqual(["shop", "nobody"]);
  });

  test("helpers build PostgreSQL's 28000 texts", () => {
    const e = noHbaEntryError({ host: "10.0.0.1", user: "u", database: "d" });
    expect([e.code, e.severity, e.message]).toEqual([
      "28000",
      "FATAL",
      'no pg_hba.conf entry for host "10.0.0.1", user "u", database "d", no encryption',
    ]);
    expect(noHbaEntryError({ host: "[local]", user: "u", database: "d" }).message).toBe(
      'no pg_hba.conf entry for host "[local]", user "u", database "d", no encryption',
    );
    expect(noHbaEntryError({ host: "::1", user: "r", database: "", replication: true }).message)
      .toBe(
        'no pg_hba.conf entry for replication connection from host "::1", user "r", no encryption',
      );
    expect(hbaRejectError({ host: "10.0.0.1", user: "u", database: "d" }).message).toBe(
      'pg_hba.conf rejects connection for host "10.0.0.1", user "u", database "d", no encryption',
    );
  });
});
