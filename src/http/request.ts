import type { IncomingMessage } from "node:http";

/** Query parameters as Koa presents them: repeated names become arrays. */
export type Query = Record<string, string | string[]>;

/** The parts of an `/events` request URL, or why it cannot be read. */
export type EventsUrl =
  { ok: true; subject: string | undefined; query: Query } | { ok: false; message: string };

/** True for the streaming route, which is served on `node:http` directly (see events.ts). */
export function isEventsRequest(req: IncomingMessage): boolean {
  const url = req.url ?? "";
  return (
    req.method === "GET" &&
    url.startsWith("/events") &&
    (url.length === 7 || url[7] === "/" || url[7] === "?")
  );
}

/** Splits `/events[/<subject>][?query]`, percent-decoding the subject and the query. */
export function parseEventsUrl(rawUrl: string): EventsUrl {
  const q = rawUrl.indexOf("?");
  const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const rest = path.slice("/events".length);
  let subject: string | undefined;
  if (rest.length > 1) {
    const segment = rest.slice(1);
    if (segment.includes("/"))
      return { ok: false, message: "the subject must be one path segment" };
    try {
      subject = decodeURIComponent(segment);
    } catch {
      return { ok: false, message: "malformed percent-encoding in the URL" };
    }
  } else if (rest === "/") {
    subject = "";
  }
  // No prototype: a parameter named "__proto__" is just a parameter.
  const query: Query = Object.create(null) as Query;
  if (q >= 0) {
    for (const part of rawUrl.slice(q + 1).split("&")) {
      if (part === "") continue;
      const eq = part.indexOf("=");
      let name: string;
      let value: string;
      try {
        name = decodeURIComponent((eq < 0 ? part : part.slice(0, eq)).replace(/\+/g, " "));
        value = eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1).replace(/\+/g, " "));
      } catch {
        return { ok: false, message: "malformed percent-encoding in the query" };
      }
      const prev = query[name];
      query[name] =
        prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
    }
  }
  return { ok: true, subject, query };
}

/**
 * The client address for per-client limits: the socket's peer, or with TRUST_PROXY the last
 * `X-Forwarded-For` entry, the one added by the proxy in front of the gateway.
 */
export function clientAddress(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const xff = req.headers["x-forwarded-for"];
    // The last entry is what the trusted proxy itself saw; earlier ones the client can forge.
    const last = (Array.isArray(xff) ? xff.join(",") : xff)?.split(",").pop()?.trim();
    if (last) return last;
  }
  return req.socket.remoteAddress ?? "unknown";
}

/** One header's value, joined when sent more than once. */
export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(", ") : v;
}
