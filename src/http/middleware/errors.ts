import type { Context, Next } from "koa";
import type { Logger } from "../../telemetry/logger";
import { sendError } from "../errors";

/**
 * Turns what reaches the edge of the app into JSON answers: unknown routes, wrong methods,
 * malformed URLs (400, never a 5xx) and, last, real bugs (500, logged).
 */
export function errors(log: Logger) {
  return async (ctx: Context, next: Next): Promise<void> => {
    try {
      await next();
    } catch (err) {
      if (ctx.headerSent || !ctx.writable) {
        log.error({ err }, "error after the response started");
        return;
      }
      if (err instanceof URIError)
        return sendError(ctx, 400, "malformed_request", "malformed percent-encoding in the URL");
      log.error({ err, path: ctx.path }, "unhandled error");
      return sendError(ctx, 500, "internal", "internal error");
    }
    if (ctx.respond === false) return;
    if (ctx.status === 404 && ctx.body === undefined)
      sendError(ctx, 404, "not_found", `no route for ${ctx.method} ${ctx.path}`);
    else if (ctx.status === 405 && (ctx.body === undefined || typeof ctx.body === "string"))
      sendError(ctx, 405, "method_not_allowed", `${ctx.method} is not allowed on ${ctx.path}`);
  };
}
