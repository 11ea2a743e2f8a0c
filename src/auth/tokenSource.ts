import type { IncomingHttpHeaders } from "node:http";

/** Where a request's token may come from (AUTH_COOKIE, AUTH_QUERY_TOKEN). */
export interface TokenSources {
  /** Cookie name carrying the token; undefined: cookies are not read. */
  cookie: string | undefined;
  /** Whether the `access_token` query parameter is read. */
  query: boolean;
}

/** A request's token, where it was found, or why it cannot be read. */
export type FoundToken =
  | { type: "none" }
  | { type: "token"; token: string; source: "header" | "cookie" | "query" }
  | { type: "malformed"; message: string };

/**
 * Finds a request's bearer token: `Authorization: Bearer <token>` (RFC 6750), else the cookie,
 * else `?access_token=`. A browser's `EventSource` cannot set headers, so the cookie (sent with
 * `withCredentials`) and the query parameter are how pages authenticate; the header is for
 * every other client. Pure.
 */
export function findToken(
  headers: IncomingHttpHeaders,
  query: Readonly<Record<string, string | string[]>>,
  sources: TokenSources,
): FoundToken {
  const auth = headers.authorization;
  // Another scheme (a page behind HTTP Basic auth) is not ours: the cookie or query may still
  // carry the token. A Bearer header that is malformed is refused, not skipped.
  if (auth !== undefined && /^bearer(\s|$)/i.test(auth)) {
    const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(auth);
    if (!m)
      return { type: "malformed", message: "the Authorization header is not `Bearer <token>`" };
    return { type: "token", token: m[1] as string, source: "header" };
  }
  if (sources.cookie !== undefined) {
    const value = cookieValue(headers.cookie, sources.cookie);
    if (value) return { type: "token", token: value, source: "cookie" };
  }
  if (sources.query) {
    const q = query.access_token;
    if (Array.isArray(q))
      return { type: "malformed", message: "access_token is given more than once" };
    if (q) return { type: "token", token: q, source: "query" };
  }
  return { type: "none" };
}

/** The value of cookie `name` in a `Cookie` header (RFC 6265: `a=1; b=2`), quotes removed. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    const v = part.slice(eq + 1).trim();
    return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
  }
  return undefined;
}
