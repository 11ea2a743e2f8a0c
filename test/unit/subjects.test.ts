import fc from "fast-check";
import {
  parseFilterSet,
  parseSubject,
  subjectIsSubset,
  subjectMatches,
  subjectsOverlap,
  type SubjectRules,
} from "../../src/broker/subjects";

const rules: SubjectRules = { allowWildcards: true, allowKv: false, maxSubjects: 4, maxLength: 64 };

describe("parseSubject", () => {
  it.each(["orders", "orders.eu.42", "orders.*.42", "orders.>", ">", "*", "a-b_c.ü", "$KVX.a"])(
    "accepts %p",
    (s) => expect(parseSubject(s, rules)).toEqual({ ok: true, value: s }),
  );

  it.each([
    ["", /empty/],
    ["orders..42", /empty token/],
    [".orders", /empty token/],
    ["orders.", /empty token/],
    ["orders eu", /whitespace/],
    ["orders\u0000", /control/],
    ["orders\teu", /whitespace/],
    ["orders.>.x", /last token/],
    ["ord*ers", /whole tokens/],
    ["orders.4>", /whole tokens/],
    ["x".repeat(65), /longer than 64/],
  ])("refuses the malformed %p", (s, why) => {
    const r = parseSubject(s, rules);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.type).toBe("malformed");
      expect(JSON.stringify(r.error)).toMatch(why);
    }
  });

  it.each(["$JS.API.INFO", "$SYS.ACCOUNT.x", "_INBOX.abc", "$KV.bucket.key", "$JS.>", "$SYS"])(
    "never serves the system subject %p",
    (s) => {
      const r = parseSubject(s, rules);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.type).toBe("forbidden");
    },
  );

  it("serves KV subjects only when allowed", () => {
    expect(parseSubject("$KV.bucket.key", { ...rules, allowKv: true }).ok).toBe(true);
  });

  it("refuses wildcards when they are disabled", () => {
    const r = parseSubject("orders.*", { ...rules, allowWildcards: false });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.type).toBe("forbidden");
  });
});

describe("parseFilterSet", () => {
  it("deduplicates and sorts so equal sets share a feed", () => {
    expect(parseFilterSet(["b", "a", "b"], rules)).toEqual({ ok: true, value: ["a", "b"] });
  });

  it("refuses an empty set, too many subjects and overlapping filters", () => {
    expect(parseFilterSet([], rules)).toEqual({ ok: false, error: { type: "empty" } });
    expect(parseFilterSet(["a", "b", "c", "d", "e"], rules)).toEqual({
      ok: false,
      error: { type: "too-many", count: 5, max: 4 },
    });
    expect(parseFilterSet(["orders.>", "orders.eu.1"], rules)).toEqual({
      ok: false,
      error: { type: "overlap", subjects: ["orders.>", "orders.eu.1"] },
    });
  });
});

describe("subject matching", () => {
  it("matches like NATS", () => {
    expect(subjectMatches("orders.*", "orders.eu")).toBe(true);
    expect(subjectMatches("orders.*", "orders.eu.1")).toBe(false);
    expect(subjectMatches("orders.>", "orders.eu.1")).toBe(true);
    expect(subjectMatches("orders.>", "orders")).toBe(false);
    expect(subjectMatches("orders", "orders")).toBe(true);
  });

  it("detects overlap", () => {
    expect(subjectsOverlap("a.*", "a.b")).toBe(true);
    expect(subjectsOverlap("a.*", "*.b")).toBe(true);
    expect(subjectsOverlap("a.>", "a.b.c")).toBe(true);
    expect(subjectsOverlap("a.>", "a")).toBe(false);
    expect(subjectsOverlap("a.b", "a.c")).toBe(false);
    expect(subjectsOverlap("a.*", "a.b.c")).toBe(false);
  });

  it("detects subsets of a stream's subjects", () => {
    expect(subjectIsSubset("orders.eu.1", "orders.>")).toBe(true);
    expect(subjectIsSubset("orders.*", "orders.>")).toBe(true);
    expect(subjectIsSubset("orders.>", "orders.*")).toBe(false);
    expect(subjectIsSubset("orders.*", "orders.eu")).toBe(false);
    expect(subjectIsSubset(">", "orders.>")).toBe(false);
    expect(subjectIsSubset("orders.*.x", "orders.*.*")).toBe(true);
  });

  const token = fc.constantFrom("a", "b", "*");
  const subject = fc
    .array(token, { minLength: 1, maxLength: 3 })
    .chain((ts) => fc.boolean().map((tail) => (tail ? [...ts, ">"] : ts).join(".")));
  const literal = fc
    .array(fc.constantFrom("a", "b"), { minLength: 1, maxLength: 5 })
    .map((t) => t.join("."));

  it("overlap means some literal subject matches both (property)", () => {
    fc.assert(
      fc.property(
        subject,
        subject,
        fc.array(literal, { minLength: 60, maxLength: 60 }),
        (x, y, samples) => {
          const witness = samples.some((s) => subjectMatches(x, s) && subjectMatches(y, s));
          if (witness) expect(subjectsOverlap(x, y)).toBe(true);
          expect(subjectsOverlap(x, y)).toBe(subjectsOverlap(y, x));
        },
      ),
    );
  });

  it("a subset's matches are all matched by the superset (property)", () => {
    fc.assert(
      fc.property(subject, subject, literal, (f, p, s) => {
        if (subjectIsSubset(f, p) && subjectMatches(f, s)) expect(subjectMatches(p, s)).toBe(true);
      }),
    );
  });
});
