import { cookieValue, findToken } from "../../src/auth/tokenSource";

const all = { cookie: "sse_token", query: true };

describe("findToken", () => {
  it("takes the Authorization header first, then the cookie, then ?access_token=", () => {
    const headers = { authorization: "Bearer aaa.bbb.ccc", cookie: "sse_token=ddd.eee.fff" };
    expect(findToken(headers, { access_token: "ggg" }, all)).toEqual({
      type: "token",
      token: "aaa.bbb.ccc",
      source: "header",
    });
    expect(findToken({ cookie: "x=1; sse_token=ddd.eee.fff" }, { access_token: "g" }, all)).toEqual(
      { type: "token", token: "ddd.eee.fff", source: "cookie" },
    );
    expect(findToken({}, { access_token: "ggg" }, all)).toEqual({
      type: "token",
      token: "ggg",
      source: "query",
    });
  });

  it("reads no cookie unless AUTH_COOKIE names one, and no query token when it is off", () => {
    const sources = { cookie: undefined, query: false };
    expect(findToken({ cookie: "sse_token=abc" }, { access_token: "abc" }, sources)).toEqual({
      type: "none",
    });
  });

  it("accepts the scheme in any case (RFC 7235), refuses a malformed Bearer, and leaves other schemes to the cookie and query", () => {
    expect(findToken({ authorization: "bearer abc" }, {}, all).type).toBe("token");
    expect(findToken({ authorization: "Basic dXNlcjpwYXNz" }, {}, all).type).toBe("none");
    expect(findToken({ authorization: "Basic dXNlcjpwYXNz" }, { access_token: "q" }, all)).toEqual({
      type: "token",
      token: "q",
      source: "query",
    });
    expect(findToken({ authorization: "Bearer" }, {}, all).type).toBe("malformed");
    expect(findToken({ authorization: "Bearer a b" }, {}, all).type).toBe("malformed");
  });

  it("refuses a query token given twice rather than picking one", () => {
    expect(findToken({}, { access_token: ["a", "b"] }, all).type).toBe("malformed");
  });

  it("never puts the token in its messages", () => {
    const r = findToken({ authorization: "Bearer s3cr3t extra" }, {}, all);
    expect(r.type === "malformed" && r.message).not.toContain("s3cr3t");
  });
});

describe("cookieValue", () => {
  it("finds a cookie among others, trims it and removes quotes", () => {
    expect(cookieValue("a=1; sse_token=xyz; b=2", "sse_token")).toBe("xyz");
    expect(cookieValue('sse_token="xyz"', "sse_token")).toBe("xyz");
    expect(cookieValue("sse_token_old=1", "sse_token")).toBeUndefined();
    expect(cookieValue(undefined, "sse_token")).toBeUndefined();
    expect(cookieValue("garbage", "sse_token")).toBeUndefined();
  });
});
