import type { Context, Next } from "koa";

/**
 * CORS for browsers on other origins (CORS_ORIGINS). `*` allows any origin without
 * credentials; listed origins are echoed back with credentials allowed, so
 * `new EventSource(url, { withCredentials: true })` works from them.
 */
export function cors(origins: readonly string[]) {
  const any = origins.includes("*");
  const allowed = new Set(origins);
  return async (ctx: Context, next: Next): Promise<void> => {
    const origin = ctx.get("origin");
    if (origin && (any || allowed.has(origin))) {
      if (any) ctx.set("Access-Control-Allow-Origin", "*");
      else {
        ctx.set("Access-Control-Allow-Origin", origin);
        ctx.set("Access-Control-Allow-Credentials", "true");
        ctx.vary("Origin");
      }
      if (ctx.method === "OPTIONS") {
        ctx.set("Access-Control-Allow-Methods", "GET, OPTIONS");
        ctx.set("Access-Control-Allow-Headers", "Last-Event-ID, Cache-Control");
        ctx.set("Access-Control-Max-Age", "600");
        ctx.status = 204;
        return;
      }
    }
    await next();
  };
}
