import { originForm } from "../../src/http/server";

describe("absolute-form request targets (RFC 9112 §3.2.2)", () => {
  it("become their path and query, with the authority as the host", () => {
    expect(originForm("http://gw.example:8080/events/a.b?last=3")).toEqual({
      path: "/events/a.b?last=3",
      host: "gw.example:8080",
    });
    expect(originForm("HTTPS://gw.example")).toEqual({ path: "/", host: "gw.example" });
    expect(originForm("http://gw.example?subject=a")).toEqual({
      path: "/?subject=a",
      host: "gw.example",
    });
    expect(originForm("http://[::1]:80/events")).toEqual({ path: "/events", host: "[::1]:80" });
  });

  it("are refused when they are not http(s) URLs with an authority", () => {
    for (const bad of ["ftp://x/events", "http:///events", "gw.example/events", "http://u@x/"])
      expect(`${bad}: ${JSON.stringify(originForm(bad))}`).toBe(`${bad}: undefined`);
  });
});
