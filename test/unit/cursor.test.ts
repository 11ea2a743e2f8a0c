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
