import type { IncomingMessage } from "node:http";
import fc from "fast-check";
import {
  isEventsRequest,
  parseEventsUrl as parseWithLimits,
  type Query,
  type UrlLimits,
} from "../../src/http/request";
import { countArrayWork, WorkBudgetExceeded } from "../support/arrayWork";

/** Bounds too wide to matter, for tests about something else. */
const WIDE: UrlLimits = { maxQueryBytes: 1 << 30, maxParams: 1 << 30 };
const parseEventsUrl = (url: string) => parseWithLimits(url, WIDE);

const req = (url: string, headers: Record<string, string> = {}, method = "GET") =>
  ({ url, method, headers, socket: { remoteAddress: "10.0.0.9" } }) as unknown as IncomingMessage;

describe("the streaming route's request parsing", () => {
  it("recognises /events, /events/<subject> and /events?…, nothing else", () => {
    expect(isEventsRequest(req("/events"))).toBe(true);
    expect(isEventsRequest(req("/events/a.b"))).toBe(true);
    expect(isEventsRequest(req("/events?subject=a"))).toBe(true);
    expect(isEventsRequest(req("/eventsx"))).toBe(false);
    expect(isEventsRequest(req("/events", {}, "POST"))).toBe(false);
  });

  it("percent-decodes the subject and repeated query parameters", () => {
    expect(parseEventsUrl("/events/orders.%3E?subject=a&subject=b&last=3")).toEqual({
      ok: true,
      subject: "orders.>",
      query: Object.assign(Object.create(null), { subject: ["a", "b"], last: "3" }),
    });
  });

  it("reads /events/ as no path subject, so a query subject may stand alone", () => {
    expect(parseEventsUrl("/events/")).toMatchObject({ ok: true, subject: undefined });
    expect(parseEventsUrl("/events/?subject=a")).toMatchObject({
      ok: true,
      subject: undefined,
      query: { subject: "a" },
    });
  });

  it("refuses bad percent-encoding and a subject over two path segments", () => {
    expect(parseEventsUrl("/events/%E0%A4%A").ok).toBe(false);
    expect(parseEventsUrl("/events?subject=%ZZ").ok).toBe(false);
    expect(parseEventsUrl("/events/a/b").ok).toBe(false);
  });

  it("treats __proto__ as an ordinary parameter name", () => {
    const r = parseEventsUrl("/events?__proto__=x&subject=a");
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.query["__proto__"]).toBe("x");
      expect(Object.getPrototypeOf(r.query)).toBeNull();
    }
  });
});

describe("the query string's bounds", () => {
  it("refuses a query longer than maxQueryBytes before reading it", () => {
    const limits = { maxQueryBytes: 16, maxParams: 64 };
    expect(parseWithLimits(`/events?subject=${"x".repeat(8)}`, limits).ok).toBe(true);
    const r = parseWithLimits(`/events?subject=${"x".repeat(9)}`, limits);
    expect(r).toEqual({
      ok: false,
      error: { type: "query-too-long", message: expect.stringContaining("at most 16") },
    });
  });

  it("refuses more than maxParams parameters, repeated or not, and ignores empty ones", () => {
    const limits = { maxQueryBytes: 1 << 20, maxParams: 3 };
    expect(parseWithLimits("/events?a&&b&c&", limits).ok).toBe(true);
    for (const url of ["/events?a&a&a&a", "/events?a&b&c&d"])
      expect(parseWithLimits(url, limits)).toEqual({
        ok: false,
        error: { type: "too-many-parameters", message: expect.stringContaining("3") },
      });
  });

  it("says a query is malformed only for bad percent-encoding", () => {
    const r = parseWithLimits("/events?a=%E0%A4%A", WIDE);
    expect(r.ok === false && r.error.type).toBe("malformed");
  });
});

describe("the query parser's cost (counted, never timed)", () => {
  /** The reference: what the parser must return, written the obvious way. */
  function reference(pairs: readonly (readonly [string, string])[]): Query {
    const out: Query = Object.create(null) as Query;
    const seen = new Map<string, string[]>();
    for (const [k, v] of pairs) seen.set(k, [...(seen.get(k) ?? []), v]);
    for (const [k, vs] of seen) out[k] = vs.length === 1 ? (vs[0] as string) : vs;
    return out;
  }

  const pair = fc.tuple(
    fc.constantFrom("a", "b", "subject", "last", "__proto__", "x y", "ü"),
    fc.string({ maxLength: 6 }),
  );

  it("returns what the reference returns, with array work linear in the number of parameters", () => {
    fc.assert(
      fc.property(fc.array(pair, { minLength: 50, maxLength: 400 }), (pairs) => {
        const url =
          "/events?" +
          pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
        // Linear: at most two array steps per parameter, plus a constant. Copying a repeated
        // name's values per repeat costs ~k²/2 steps for k repeats and breaks it.
        const budget = 2 * pairs.length + 8;
        const { result, steps } = countArrayWork(() => parseEventsUrl(url), budget);
        expect(result).toEqual({ ok: true, subject: undefined, query: reference(pairs) });
        expect(steps).toBeLessThanOrEqual(budget);
      }),
    );
  });

  it("parses one name repeated 20,000 times (the `?a&a&a…` attack) with linear work", () => {
    const n = 20_000;
    const url = "/events?" + Array.from({ length: n }, () => "a").join("&");
    let outcome: unknown;
    try {
      outcome = countArrayWork(() => parseEventsUrl(url), 4 * n).steps;
    } catch (err) {
      // A quadratic parser copies ~n²/2 elements; the budget stops it after 4n.
      outcome = err instanceof WorkBudgetExceeded ? err.message : err;
    }
    expect(outcome).toEqual(expect.any(Number));
    const r = parseEventsUrl(url);
    expect(r.ok && r.query["a"]).toHaveLength(n);
  });
});
