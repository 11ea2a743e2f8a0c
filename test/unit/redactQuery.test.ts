import fc from "fast-check";
import { redactQuery } from "../../src/http/requestSpan";

describe("redactQuery", () => {
  it.each([
    ["access_token=abc", "access_token=REDACTED"],
    ["token=abc", "token=REDACTED"],
    ["jwt=eyJhbGciOiJIUzI1NiJ9.e30.sig", "jwt=REDACTED"],
    ["authorization=Bearer%20abc", "authorization=REDACTED"],
  ])("replaces the value of a token-carrying parameter: %p", (query, redacted) => {
    expect(redactQuery(query)).toBe(redacted);
  });

  it.each([
    ["ACCESS_TOKEN=abc", "ACCESS_TOKEN=REDACTED"],
    ["Access_Token=abc", "Access_Token=REDACTED"],
    ["Token=abc", "Token=REDACTED"],
    ["JWT=abc", "JWT=REDACTED"],
    ["AuThOrIzAtIoN=abc", "AuThOrIzAtIoN=REDACTED"],
  ])("compares names case-insensitively and keeps the name as sent: %p", (query, redacted) => {
    expect(redactQuery(query)).toBe(redacted);
  });

  it.each([
    ["access%5Ftoken=abc", "access%5Ftoken=REDACTED"],
    ["access%5ftoken=abc", "access%5ftoken=REDACTED"],
    ["%61ccess_token=abc", "%61ccess_token=REDACTED"],
    ["%74%6F%6B%65%6E=abc", "%74%6F%6B%65%6E=REDACTED"],
    ["%4A%57%54=abc", "%4A%57%54=REDACTED"],
  ])("decodes percent-encoded names before comparing them: %p", (query, redacted) => {
    expect(redactQuery(query)).toBe(redacted);
  });

  it("reads + in a name as a space, as a form decoder does, so `access+token` is another parameter", () => {
    expect(redactQuery("access+token=abc")).toBe("access+token=abc");
    expect(redactQuery("token+=abc")).toBe("token+=abc");
    expect(redactQuery("a+b=c+d&token=x+y")).toBe("a+b=c+d&token=REDACTED");
  });

  it("replaces the whole value, = signs and all", () => {
    expect(redactQuery("token=a=b==&x=1")).toBe("token=REDACTED&x=1");
    expect(redactQuery("token=")).toBe("token=REDACTED");
  });

  it("leaves every other parameter byte for byte as it was", () => {
    const q = "subject=orders.%3E&last=Event-ID%3A42&x=%E2%9C%93&y=a+b&tokens=1&my_token=2&z=";
    expect(redactQuery(q)).toBe(q);
    expect(redactQuery(`${q}&token=s3cret`)).toBe(`${q}&token=REDACTED`);
  });

  it("redacts every occurrence of a repeated parameter", () => {
    expect(redactQuery("token=a&x=1&TOKEN=b&token=c")).toBe(
      "token=REDACTED&x=1&TOKEN=REDACTED&token=REDACTED",
    );
  });

  it("leaves parameters without = as they are (they carry no value)", () => {
    expect(redactQuery("token&x=1")).toBe("token&x=1");
    expect(redactQuery("access_token")).toBe("access_token");
  });

  it("returns an empty query, and empty parts, unchanged", () => {
    expect(redactQuery("")).toBe("");
    expect(redactQuery("&")).toBe("&");
    expect(redactQuery("&&token=a&")).toBe("&&token=REDACTED&");
    expect(redactQuery("=x")).toBe("=x");
  });

  it("does not throw on malformed percent-encoding, and still redacts the other parts", () => {
    expect(redactQuery("%zz=1&token=abc")).toBe("%zz=1&token=REDACTED");
    expect(redactQuery("a%=1&%E2%82=2&token=%zz")).toBe("a%=1&%E2%82=2&token=REDACTED");
    expect(redactQuery("token%=abc")).toBe("token%=abc");
    expect(() => redactQuery("%%%&=%&%=")).not.toThrow();
  });

  describe("for random queries", () => {
    const lower = "abcdefghijklmnopqrstuvwxyz0123456789";
    const char = (chars: string) => fc.constantFrom(...chars.split(""));
    const text = (chars: string, minLength: number, maxLength: number) =>
      fc.array(char(chars), { minLength, maxLength }).map((cs) => cs.join(""));
    const secretNames = new Set(["access_token", "token", "jwt", "authorization"]);

    // Names and values that are no secret parameter; the secret's alphabet (upper case, "-") is
    // disjoint from theirs, so it cannot appear in them by chance.
    const name = fc.oneof(
      text(`${lower}_.~`, 1, 12).filter((n) => !secretNames.has(n)),
      fc.constantFrom("tokens", "my_token", "access_tokens", "jwt2", "auth", "to%6Bens", "a+b"),
    );
    const value = text(`${lower}%+._~=`, 0, 16);
    const part = fc.oneof(
      { weight: 4, arbitrary: fc.tuple(name, value).map(([n, v]) => `${n}=${v}`) },
      { weight: 1, arbitrary: name }, // no "="
      { weight: 1, arbitrary: fc.constant("") },
    );
    const secretName = fc.oneof(
      fc.constantFrom("access%5Ftoken", "%61ccess_token", "%74oken", "JwT"),
      fc
        .tuple(fc.constantFrom(...secretNames), fc.array(fc.boolean(), { maxLength: 13 }))
        .map(([n, up]) => [...n].map((c, i) => (up[i] ? c.toUpperCase() : c)).join("")),
    );
    const secret = text("ABCDEFGHIJKLMNOPQRSTUVWXYZ-", 6, 24).map((s) => `S-${s}`);

    it("never lets an inserted access_token's secret through, and changes nothing else", () => {
      fc.assert(
        fc.property(
          fc.array(part, { maxLength: 8 }),
          fc.nat(),
          fc.constant("access_token"),
          secret,
          (parts, at, n, s) => {
            const i = at % (parts.length + 1);
            const input = [...parts.slice(0, i), `${n}=${s}`, ...parts.slice(i)];
            const out = redactQuery(input.join("&"));
            expect(out).not.toContain(s);
            expect(out).toBe(input.map((p, j) => (j === i ? `${n}=REDACTED` : p)).join("&"));
          },
        ),
        { numRuns: 500 },
      );
    });

    it("does the same for any spelling of any token-carrying name, repeated", () => {
      fc.assert(
        fc.property(
          fc.array(
            fc.oneof(
              part.map((p) => ({ p, secret: undefined })),
              fc.tuple(secretName, secret).map(([n, s]) => ({ p: `${n}=${s}`, secret: s, n })),
            ),
            { maxLength: 10 },
          ),
          (items) => {
            const out = redactQuery(items.map((x) => x.p).join("&"));
            for (const x of items) if (x.secret) expect(out).not.toContain(x.secret);
            expect(out).toBe(
              items.map((x) => ("n" in x && x.secret ? `${x.n}=REDACTED` : x.p)).join("&"),
            );
          },
        ),
        { numRuns: 500 },
      );
    });
  });
});
