import type { IncomingMessage } from "node:http";

/** Query parameters as Koa presents them: repeated names become arrays. */
export type Query = Record<string, string | string[]>;

/** Why an `/events` request URL was refused; each maps to a status and an error code. */
export type UrlError = {
  type: "malformed" | "query-too-long" | "too-many-parameters";
  message: string;
};

/** The parts of an `/events` request URL, or why it cannot be read. */
export type EventsUrl =
  { ok: true; subject: string | undefined; query: Query } | { ok: false; error: UrlError };

/** Bounds on the query string, checked before and while it is parsed. */
export interface UrlLimits {
  /** Longest query string (after `?`), in bytes (HTTP_MAX_QUERY_BYTES, default 8192). */
  maxQueryBytes: number;
  /** Most `&`-separated parameters (HTTP_MAX_QUERY_PARAMS, default 64). */
  maxParams: number;
}

/** True for the streaming route, which is served on `node:http` directly (see events.ts). */
export function isEventsRequest(req: IncomingMessage): boolean {
  const url = req.url ?? "";
  return (
    req.method === "GET" &&
    url.startsWith("/events") &&
    (url.length === 7 || url[7] === "/" || url[7] === "?")
  );
}

const urlError = (type: UrlError["type"], message: string): EventsUrl => ({
  ok: false,
  error: { type, message },
});

/**
 * Splits `/events[/<subject>][?query]`, percent-decoding the subject and the query.
 *
 * Linear in the URL's length: the query's length is checked before anything is parsed, the
 * parameters are counted while they are read (parsing stops at the first one over the bound),
 * and a repeated name appends to its array in place. Copying the array per repeat made
 * `?a&a&a…` quadratic: 16 KB of it held the event loop for seconds.
 */
export function parseEventsUrl(rawUrl: string, limits: UrlLimits): EventsUrl {
  const q = rawUrl.indexOf("?");
  const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const rest = path.slice("/events".length);
  let subject: string | undefined;
  // `/events/` names no subject: the same as `/events` (then `?subject=` may supply one).
  if (rest.length > 1) {
    const segment = rest.slice(1);
    if (segment.includes("/")) return urlError("malformed", "the subject must be one path segment");
    try {
      subject = decodeURIComponent(segment);
    } catch {
      return urlError("malformed", "malformed percent-encoding in the URL");
    }
  }
  // No prototype: a parameter named "__proto__" is just a parameter.
  const query: Query = Object.create(null) as Query;
  if (q < 0) return { ok: true, subject, query };
  const queryBytes = rawUrl.length - q - 1; // Node hands the request target over as latin1
  if (queryBytes > limits.maxQueryBytes)
    return urlError(
      "query-too-long",
      `the query string is ${queryBytes} bytes long; at most ${limits.maxQueryBytes} are accepted`,
    );
  let params = 0;
  for (let start = q + 1; start <= rawUrl.length;) {
    let end = rawUrl.indexOf("&", start);
    if (end < 0) end = rawUrl.length;
    const part = rawUrl.slice(start, end);
    start = end + 1;
    if (part === "") continue;
    if (++params > limits.maxParams)
      return urlError(
        "too-many-parameters",
        `the query has more than ${limits.maxParams} parameters`,
      );
    const eq = part.indexOf("=");
    let name: string;
    let value: string;
    try {
      name = decodeQueryPart(eq < 0 ? part : part.slice(0, eq));
      value = eq < 0 ? "" : decodeQueryPart(part.slice(eq + 1));
    } catch {
      return urlError("malformed", "malformed percent-encoding in the query");
    }
    const prev = query[name];
    if (prev === undefined) query[name] = value;
    else if (typeof prev === "string") query[name] = [prev, value];
    else prev.push(value); // our own array: appending in place keeps the parse linear
  }
  return { ok: true, subject, query };
}

/** `application/x-www-form-urlencoded` decoding of one name or value: `+` is a space. */
function decodeQueryPart(s: string): string {
  return decodeURIComponent(s.includes("+") ? s.replace(/\+/g, " ") : s);
}

/** One header's value, joined when sent more than once. */
export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(", ") : v;
}
