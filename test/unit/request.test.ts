import type { IncomingMessage } from "node:http";
import { clientAddress, isEventsRequest, parseEventsUrl } from "../../src/http/request";

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

  it("takes the client address from the socket, or from the proxy's X-Forwarded-For entry", () => {
    const forged = { "x-forwarded-for": "1.2.3.4, 203.0.113.7" };
    expect(clientAddress(req("/events", forged), false)).toBe("10.0.0.9");
    expect(clientAddress(req("/events", forged), true)).toBe("203.0.113.7");
    expect(clientAddress(req("/events"), true)).toBe("10.0.0.9");
  });
});
