import type { Context, Next } from "koa";
import { corsHeaders, PREFLIGHT_HEADERS } from "../cors";

/** CORS for the Koa routes, and preflight answers for every route (see ../cors.ts). */
export function cors(origins: readonly string[]) {
  return async (ctx: Context, next: Next): Promise<void> => {
    const headers = corsHeaders(origins, ctx.get("origin") || undefined);
    ctx.set(headers);
    if (ctx.method === "OPTIONS" && headers["Access-Control-Allow-Origin"]) {
      ctx.set(PREFLIGHT_HEADERS);
      ctx.status = 204;
      return;
    }
    await next();
  };
}
