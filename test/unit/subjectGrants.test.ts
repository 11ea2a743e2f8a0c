import fc from "fast-check";
import {
  coveredByAny,
  firstUncovered,
  grantCovers,
  parsePatternList,
} from "../../src/auth/subjectGrants";

/**
 * The oracle: NATS matching of a pattern against a subject, written as directly as possible
 * (recursively, token by token) so it shares no code or shortcuts with the module under test.
 * With a concrete subject it is NATS delivery; with a wildcard "subject" it is literal, which
 * the properties below only use for concrete ones.
 */
function matches(pattern: string, subject: string): boolean {
  const go = (p: string[], s: string[]): boolean => {
    if (p.length === 0) return s.length === 0;
    const [head, ...rest] = p;
    if (head === ">") return s.length >= 1;
    if (s.length === 0) return false;
    return (head === "*" || head === s[0]) && go(rest, s.slice(1));
  };
  return go(pattern.split("."), subject.split("."));
}

/** Every concrete subject over `alphabet` with 1..maxTokens tokens. */
function allSubjects(alphabet: readonly string[], maxTokens: number): string[] {
  const out: string[] = [];
  let layer = [...alphabet];
  for (let n = 1; n <= maxTokens; n++) {
    out.push(...layer);
    layer = layer.flatMap((prefix) => alphabet.map((t) => `${prefix}.${t}`));
  }
  return out;
}

describe("grantCovers", () => {
  it.each([
    // The brief's examples.
    ["orders.eu.>", "orders.eu.42"],
    ["orders.eu.>", "orders.eu.*"],
    ["orders.eu.>", "orders.eu.>"],
    ["orders.eu.>", "orders.eu.a.b"],
    ["orders.*.42", "orders.eu.42"],
    ["orders.*.42", "orders.*.42"],
    // Equal literals, and a `*` grant in every position.
    ["orders", "orders"],
    ["orders.eu.42", "orders.eu.42"],
    ["*.eu.42", "orders.eu.42"],
    ["*.eu.42", "*.eu.42"],
    ["orders.*.42", "orders.us.42"],
    ["orders.eu.*", "orders.eu.42"],
    ["orders.eu.*", "orders.eu.*"],
    ["*.*.*", "orders.*.42"],
    ["*.*.*", "*.*.*"],
    // `>` at the end of shorter and equal-length grants.
    ["orders.>", "orders.eu"],
    ["orders.>", "orders.*"],
    ["orders.>", "orders.*.42.x"],
    ["orders.>", "orders.eu.>"],
    ["orders.*.>", "orders.eu.42"],
    ["orders.*.>", "orders.*.>"],
    ["*.>", "orders.>"],
    // `>` alone covers everything valid; `*` alone covers single tokens.
    [">", "orders"],
    [">", "orders.eu.42"],
    [">", "*"],
    [">", ">"],
    [">", "*.*.>"],
    ["*", "orders"],
    ["*", "*"],
  ])("grant %p covers filter %p", (grant, filter) => {
    expect(grantCovers(grant, filter)).toBe(true);
  });

  it.each([
    // The brief's examples.
    ["orders.eu.>", "orders.>"],
    ["orders.eu.>", "orders.*.42"],
    ["orders.eu.>", "orders.eu"],
    ["orders.*.42", "orders.>"],
    ["orders.*.42", "orders.eu.*"],
    // Different literals, and length mismatches either way.
    ["orders", "order"],
    ["orders.eu.42", "orders.eu.43"],
    ["orders.eu.42", "orders.eu"],
    ["orders.eu", "orders.eu.42"],
    ["orders.*", "orders"],
    ["orders.*", "orders.eu.42"],
    ["*.*.*", "orders.eu"],
    // A literal grant token never covers a `*` or `>` filter token, in any position.
    ["orders.eu.42", "*.eu.42"],
    ["orders.eu.42", "orders.*.42"],
    ["orders.eu.42", "orders.eu.*"],
    ["orders.eu.42", "orders.eu.>"],
    ["orders.eu", "orders.>"],
    ["orders", ">"],
    // A `*` grant token never covers a `>` filter token (it stops at one token).
    ["*.eu", ">"],
    ["orders.*", "orders.>"],
    ["orders.*.42", "orders.*.>"],
    ["*", ">"],
    ["*", "orders.eu"],
    ["*", "*.*"],
    // `>` needs at least one token, and only covers what follows a matching prefix.
    ["orders.>", "orders"],
    ["orders.>", "order.eu"],
    ["orders.>", "*.eu"],
    ["orders.*.>", "orders.eu"],
    ["orders.*.>", "orders.>"],
    ["*.>", "orders"],
    ["*.>", ">"],
  ])("grant %p does not cover filter %p", (grant, filter) => {
    expect(grantCovers(grant, filter)).toBe(false);
  });

  it.each([
    ["", "orders"],
    ["orders", ""],
    ["", ""],
    [">", ""],
    [">", "orders..42"],
    ["orders..42", "orders..42"],
    ["orders.", "orders."],
    [".>", ".orders"],
    ["orders.>.x", "orders.eu.x"],
    [">", "orders.>.x"],
  ])("fails closed on the empty or malformed pair %p / %p, without throwing", (grant, filter) => {
    expect(grantCovers(grant, filter)).toBe(false);
  });

  // Grant and filter tokens from {a, b, *, >}: a literal-only grant can never mention "c", so
  // the oracle's alphabet {a, b, c} always has a witness for a wildcard reaching further.
  const literalOrWildcard = fc.constantFrom("a", "b", "*");
  const pattern = fc
    .tuple(fc.array(literalOrWildcard, { maxLength: 3 }), fc.constantFrom("a", "b", "*", ">"))
    .map(([init, last]) => [...init, last].join("."));

  it("agrees with brute force: a grant covers a filter iff it matches every subject the filter matches", () => {
    fc.assert(
      fc.property(pattern, pattern, (grant, filter) => {
        const longest = Math.max(grant.split(".").length, filter.split(".").length);
        const subjects = allSubjects(["a", "b", "c"], longest + 2);
        const expected = subjects.filter((s) => matches(filter, s)).every((s) => matches(grant, s));
        expect(grantCovers(grant, filter)).toBe(expected);
      }),
      { numRuns: 500 },
    );
  });

  it("for a concrete filter, covering is exactly NATS matching", () => {
    const concrete = fc
      .array(fc.constantFrom("a", "b", "c"), { minLength: 1, maxLength: 6 })
      .map((tokens) => tokens.join("."));
    fc.assert(
      fc.property(pattern, concrete, (grant, subject) => {
        expect(grantCovers(grant, subject)).toBe(matches(grant, subject));
      }),
      { numRuns: 500 },
    );
  });

  it("every valid pattern covers itself", () => {
    fc.assert(fc.property(pattern, (p) => expect(grantCovers(p, p)).toBe(true)));
  });
});

describe("coveredByAny and firstUncovered", () => {
  const grants = ["orders.eu.>", "fleet.*.position"];

  it("a filter is covered when any one grant covers it", () => {
    expect(coveredByAny(grants, "orders.eu.42")).toBe(true);
    expect(coveredByAny(grants, "fleet.truck7.position")).toBe(true);
    expect(coveredByAny(grants, "fleet.*.position")).toBe(true);
  });

  it("a filter is not covered when no grant covers it alone", () => {
    expect(coveredByAny(grants, "orders.us.1")).toBe(false);
    expect(coveredByAny(grants, "fleet.>")).toBe(false);
    // Two grants that together span a filter still do not cover it: each must alone.
    expect(coveredByAny(["a.a", "a.b"], "a.*")).toBe(false);
  });

  it("no grants cover nothing", () => {
    expect(coveredByAny([], "orders")).toBe(false);
    expect(firstUncovered([], ["orders"])).toBe("orders");
  });

  it("names the first filter that no grant covers, in the order given", () => {
    expect(firstUncovered(grants, ["orders.eu.1", "orders.us.1", "fleet.>"])).toBe("orders.us.1");
    expect(firstUncovered(grants, ["fleet.>", "orders.us.1"])).toBe("fleet.>");
  });

  it("answers undefined when every filter is covered, or none was asked for", () => {
    expect(firstUncovered(grants, ["orders.eu.1", "orders.eu.*", "fleet.*.position"])).toBe(
      undefined,
    );
    expect(firstUncovered(grants, [])).toBe(undefined);
  });
});

describe("parsePatternList", () => {
  it.each([
    ["orders.eu.>", ["orders.eu.>"]],
    ["orders.eu.>,fleet.*.position", ["orders.eu.>", "fleet.*.position"]],
    [" orders.eu.> , fleet.*.position ,", ["orders.eu.>", "fleet.*.position"]],
    [",,orders,,", ["orders"]],
    [">", [">"]],
    ["*,*.*", ["*", "*.*"]],
    ["a-b_c.ü,$KV.bucket.>", ["a-b_c.ü", "$KV.bucket.>"]],
    ["", []],
    [" , ,", []],
  ])("parses %p into the trimmed, non-empty patterns in order", (raw, expected) => {
    expect(parsePatternList(raw)).toEqual({ ok: true, value: expected });
  });

  it.each([
    ["orders..42", "orders..42", /empty token/],
    [".orders", ".orders", /empty token/],
    ["ok.>, orders.", "orders.", /empty token/],
    ["orders eu", "orders eu", /whitespace/],
    ["orders\u0001x", "orders\u0001x", /control/],
    ["orders.>.x", "orders.>.x", /last token/],
    ["ok, ord*ers", "ord*ers", /whole tokens/],
    ["orders.4>", "orders.4>", /whole tokens/],
  ])("refuses %p, naming the bad pattern %p and why", (raw, bad, why) => {
    const r = parsePatternList(raw);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toContain(JSON.stringify(bad));
      expect(r.error).toMatch(why);
    }
  });

  it("keeps control characters out of the error message", () => {
    const r = parsePatternList("a\u0007b");
    expect(r.ok).toBe(false);
    // eslint-disable-next-line no-control-regex
    if (!r.ok) expect(r.error).not.toMatch(/[\u0000-\u001f]/);
  });
});
