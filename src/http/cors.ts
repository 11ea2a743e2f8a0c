/**
 * CORS response headers for a request's `Origin` (CORS_ORIGINS). `*` allows any origin without
 * credentials; listed origins are echoed back with credentials allowed, so
 * `new EventSource(url, { withCredentials: true })` works from them. Pure: used by the Koa
 * middleware and by the streaming route alike.
 */
export function corsHeaders(
  origins: readonly string[],
  origin: string | undefined,
): Record<string, string> {
  if (!origin) return {};
  if (origins.includes("*"))
    return { "Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSED };
  if (!origins.includes(origin)) return {};
  return {
    "Access-Control-Allow-Origin": origin,
    "Access-Control-Allow-Credentials": "true",
    // So a page's script can read why it was refused and when to come back.
    "Access-Control-Expose-Headers": EXPOSED,
    Vary: "Origin",
  };
}

/** Response headers a page's script may read: why it was refused, and when to come back. */
const EXPOSED = "WWW-Authenticate, Retry-After";

/**
 * Extra headers answering a preflight (`OPTIONS`): the token, the resume cursor, and W3C trace
 * context, so a traced page's fetch-based SSE client continues its trace here.
 */
export const PREFLIGHT_HEADERS: Readonly<Record<string, string>> = {
  "Access-Control-Allow-Methods": "GET, OPTIONS",
  "Access-Control-Allow-Headers":
    "Authorization, Last-Event-ID, Cache-Control, traceparent, tracestate, baggage",
  "Access-Control-Max-Age": "600",
};
