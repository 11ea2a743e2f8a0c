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
  if (origins.includes("*")) return { "Access-Control-Allow-Origin": "*" };
  if (!origins.includes(origin)) return {};
  return {
    "Access-Control-Allow-Origin": origin,
    "Access-Control-Allow-Credentials": "true",
    // So a page's script can read why it was refused and when to come back.
    "Access-Control-Expose-Headers": "WWW-Authenticate, Retry-After",
    Vary: "Origin",
  };
}

/** Extra headers answering a preflight (`OPTIONS`). */
export const PREFLIGHT_HEADERS: Readonly<Record<string, string>> = {
  "Access-Control-Allow-Methods": "GET, OPTIONS",
  "Access-Control-Allow-Headers": "Authorization, Last-Event-ID, Cache-Control",
  "Access-Control-Max-Age": "600",
};
