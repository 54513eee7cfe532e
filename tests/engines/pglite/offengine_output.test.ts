/**
 * The timestamptz and inet output that pg_stat_activity's answer without
 * the engine writes (offengine-out.ts) is the engine's, character for
 * character: each expected text below is what PGlite printed for the same
 * value (`SET timezone …; SELECT '…'::timestamptz`, `SELECT '…'::inet`).
 * What it cannot be sure of gives null, and the statement goes to the
 * engine.
 */

import { describe, expect, test } from "bun:test";
import {
  inetOut,
  inetSend,
  timestamptzOut,
  timestamptzSend,
} from "../../../src/engines/pglite/offengine-out.ts";

const us = (iso: string) => Date.parse(iso) * 1000;

describe("timestamptz as the engine writes it", () => {
  test("ISO in the session's zone: fractions trimmed, offsets with minutes and seconds only when set", () => {
    for (
      const [timeZone, iso, engine] of [
        ["Asia/Kolkata", "2026-12-07T18:39:39.123Z", "2026-12-08 00:09:39.123+05:30"],
        ["America/St_Johns", "2026-06-01T12:00:00.120Z", "2026-06-01 09:30:00.12-02:30"],
        ["America/St_Johns", "1880-01-01T00:00:00Z", "1879-12-31 20:29:08-03:30:52"],
        ["Etc/UTC", "2026-12-07T18:39:39.000Z", "2026-12-07 18:39:39+00"],
        ["UTC", "2026-12-07T18:39:39.100Z", "2026-12-07 18:39:39.1+00"],
        ["Europe/Amsterdam", "1920-06-01T00:00:00.001Z", "1920-06-01 01:00:00.001+01"],
        ["Asia/Kathmandu", "2026-01-01T00:00:00Z", "2026-01-01 05:45:00+05:45"],
        ["America/New_York", "2026-03-08T07:30:00Z", "2026-03-08 03:30:00-04"],
        ["Africa/Monrovia", "1960-01-01T00:00:00Z", "1959-12-31 23:15:30-00:44:30"],
      ] as const
    ) {
      for (const dateStyle of ["ISO, MDY", "ISO, DMY", "ISO, YMD"]) {
        expect(timestamptzOut({ dateStyle, timeZone })!(us(iso))).toBe(engine);
      }
    }
    expect(timestamptzOut({ dateStyle: "ISO, MDY", timeZone: "UTC" })!(us("2026-01-01Z") + 7))
      .toBe("2026-01-01 00:00:00.000007+00");
  });

  test("another DateStyle, a POSIX-style or unknown zone, or no value: the engine's", () => {
    for (
      const style of [
        { dateStyle: "SQL, DMY", timeZone: "Asia/Kolkata" },
        { dateStyle: "Postgres, MDY", timeZone: "UTC" },
        { dateStyle: "German, DMY", timeZone: "UTC" },
        { dateStyle: "ISO, MDY", timeZone: "<+05>-05" },
        { dateStyle: "ISO, MDY", timeZone: "EST5EDT" },
        { dateStyle: "ISO, MDY", timeZone: "Etc/GMT+5" },
        { dateStyle: "ISO, MDY", timeZone: "Mars/Olympus_Mons" },
        { dateStyle: "ISO, MDY", timeZone: undefined },
        { dateStyle: undefined, timeZone: "UTC" },
      ]
    ) {
      expect(timestamptzOut(style)).toBeNull();
    }
  });

  test("binary: microseconds since 2000-01-01 UTC, big-endian", () => {
    expect(Buffer.from(timestamptzSend(us("2000-01-01T00:00:01Z"))).toString("hex"))
      .toBe("00000000000f4240");
    expect(Buffer.from(timestamptzSend(us("1999-12-31T23:59:59Z"))).toString("hex"))
      .toBe("fffffffffff0bdc0");
  });
});

describe("inet as the engine writes it", () => {
  test("IPv4, and IPv6 compressed as PostgreSQL compresses it", () => {
    for (
      const [address, engine] of [
        ["127.0.0.1", "127.0.0.1"],
        ["::1", "::1"],
        ["::", "::"],
        ["::ffff:127.0.0.1", "::ffff:127.0.0.1"],
        ["::ffff:7f00:1", "::ffff:127.0.0.1"],
        ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
        ["fe80::1:0:0:0", "fe80::1:0:0:0"],
        ["2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
        ["::0.0.0.2", "::2"],
        ["::1.2.3.4", "::1.2.3.4"],
        ["1::", "1::"],
        ["0:0:0:0:0:ffff:1.2.3.4", "::ffff:1.2.3.4"],
        ["1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"],
      ] as const
    ) {
      expect(inetOut(address)).toBe(engine);
    }
  });

  test("what is not a plain address: the engine's", () => {
    for (const address of ["fe80::1%eth0", "127.0.0.01", "256.0.0.1", "1:2:3:4:5:6:7:8:9", "x"]) {
      expect(inetOut(address)).toBeNull();
      expect(inetSend(address)).toBeNull();
    }
  });

  test("binary: family, bits, is_cidr, length, address", () => {
    expect(Buffer.from(inetSend("127.0.0.1")!).toString("hex")).toBe("022000047f000001");
    expect(Buffer.from(inetSend("::1")!).toString("hex")).toBe(
      "03800010" + "00".repeat(15) + "01",
    );
  });
});
