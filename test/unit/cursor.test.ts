import fc from "fast-check";
import { parseStart } from "../../src/sse/cursor";

const start = (header: string | undefined, query: Record<string, string | string[]> = {}) =>
  parseStart({ header, query, maxLast: 1000 });

describe("parseStart", () => {
  it("starts fresh connections with new messages only", () => {
    expect(start(undefined)).toEqual({ ok: true, value: { kind: "new" } });
  });

  it("resumes after the Last-Event-ID header", () => {
    expect(start("41")).toEqual({ ok: true, value: { kind: "after", seq: 41 } });
    expect(start("0")).toEqual({ ok: true, value: { kind: "after", seq: 0 } });
  });

  it("treats an empty header as no cursor", () => {
    expect(start("")).toEqual({ ok: true, value: { kind: "new" } });
  });

  it("accepts the lastEventId query parameter as an alternative", () => {
    expect(start(undefined, { lastEventId: "17" })).toEqual({
      ok: true,
      value: { kind: "after", seq: 17 },
    });
  });

  it("prefers the header to the query cursor, and any cursor to a start position", () => {
    expect(start("20", { lastEventId: "17", last: "5" })).toEqual({
      ok: true,
      value: { kind: "after", seq: 20 },
    });
  });

  it.each(["abc", "-1", "+1", "1.5", "01", "1e3", " 12x", "99999999999999999", "0x10"])(
    "refuses the malformed cursor %p",
    (raw) => {
      const r = start(raw);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.type).toBe("invalid-cursor");
    },
  );

  it("parses last N within bounds", () => {
    expect(start(undefined, { last: "10" })).toEqual({
      ok: true,
      value: { kind: "last", count: 10 },
    });
    for (const bad of ["0", "1001", "x", "-3"])
      expect(start(undefined, { last: bad }).ok).toBe(false);
  });

  it("parses from a sequence (inclusive, at least 1)", () => {
    expect(start(undefined, { from: "5" })).toEqual({ ok: true, value: { kind: "from", seq: 5 } });
    expect(start(undefined, { from: "0" }).ok).toBe(false);
  });

  it("parses since as RFC 3339 or epoch milliseconds", () => {
    expect(start(undefined, { since: "2026-01-31T12:00:00Z" })).toEqual({
      ok: true,
      value: { kind: "since", time: new Date("2026-01-31T12:00:00Z") },
    });
    expect(start(undefined, { since: "1700000000000" })).toEqual({
      ok: true,
      value: { kind: "since", time: new Date(1700000000000) },
    });
    for (const bad of ["yesterday", "2026-13-45T99:00:00Z", "2026-01-31", "999999999999999"])
      expect(start(undefined, { since: bad }).ok).toBe(false);
  });

  it("refuses two start positions at once, and repeated parameters", () => {
    const both = start(undefined, { last: "3", from: "4" });
    expect(both.ok).toBe(false);
    if (!both.ok) expect(both.error.message).toMatch(/choose one/);
    expect(start(undefined, { last: ["1", "2"] }).ok).toBe(false);
    expect(start(undefined, { lastEventId: ["1", "2"] }).ok).toBe(false);
  });
});

describe("since: only times that exist, within JetStream's range", () => {
  const since = (raw: string) => start(undefined, { since: raw });
  const message = (raw: string) => {
    const r = since(raw);
    return r.ok ? "accepted" : r.error.message;
  };

  it("refuses dates that do not exist instead of rolling them over", () => {
    for (const bad of [
      "2026-02-30T00:00:00Z",
      "2026-02-29T00:00:00Z",
      "2026-04-31T00:00:00Z",
      "2026-00-10T00:00:00Z",
      "2026-01-00T00:00:00Z",
      "2026-01-01T24:00:00Z",
      "2026-01-01T23:60:00Z",
      "2026-01-01T23:59:60Z",
      "2026-01-01T00:00:00+24:00",
    ])
      expect(`${bad}: ${message(bad)}`).toBe(
        `${bad}: "since" is not a valid date and time: "${bad}"`,
      );
    expect(since("2024-02-29T23:59:59.999+01:00")).toEqual({
      ok: true,
      value: { kind: "since", time: new Date("2024-02-29T22:59:59.999Z") },
    });
    expect(since("2000-02-29T00:00:00Z").ok).toBe(true);
    expect(since("1900-02-29T00:00:00Z").ok).toBe(false);
  });

  it("refuses times JetStream cannot hold (int64 nanoseconds: 1677-09-21 to 2262-04-11)", () => {
    for (const bad of [
      "1600-01-01T00:00:00Z",
      "1677-09-21T00:12:43.145Z",
      "2262-04-11T23:47:16.855Z",
      "2300-01-01T00:00:00Z",
      "9999-12-31T23:59:59Z",
      "9223372036855",
      "99999999999999",
    ])
      expect(`${bad}: ${message(bad)}`).toMatch(
        /JetStream's time range, 1677-09-21T.* to 2262-04-11T/,
      );
    for (const good of [
      "1677-09-21T00:12:43.146Z",
      "2262-04-11T23:47:16.854Z",
      "9223372036854",
      "0",
    ])
      expect(`${good}: ${message(good)}`).toBe(`${good}: accepted`);
  });

  it("accepts a time iff its fields name a real moment (checked against Date.UTC)", () => {
    const two = (n: number) => String(n).padStart(2, "0");
    /** Mostly in range, sometimes just outside it: where rolled-over dates hide. */
    const edgy = (min: number, max: number) =>
      fc.oneof(
        { arbitrary: fc.integer({ min, max }), weight: 4 },
        { arbitrary: fc.constantFrom(min - 1, max + 1), weight: 1 },
      );
    fc.assert(
      fc.property(
        fc.integer({ min: 1678, max: 2261 }),
        edgy(1, 12),
        fc.oneof(fc.integer({ min: 28, max: 31 }), edgy(1, 31)),
        edgy(0, 23),
        edgy(0, 59),
        edgy(0, 59),
        (y, mo, d, h, mi, s) => {
          const raw = `${y}-${two(mo)}-${two(d)}T${two(h)}:${two(mi)}:${two(s)}Z`;
          const utc = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
          const real =
            utc.getUTCFullYear() === y &&
            utc.getUTCMonth() === mo - 1 &&
            utc.getUTCDate() === d &&
            utc.getUTCHours() === h &&
            utc.getUTCMinutes() === mi &&
            utc.getUTCSeconds() === s;
          expect(since(raw)).toEqual(
            real
              ? { ok: true, value: { kind: "since", time: utc } }
              : expect.objectContaining({ ok: false }),
          );
        },
      ),
    );
  });
});
