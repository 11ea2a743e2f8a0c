import type { Context } from "koa";
import type { AppDeps } from "../deps";

/** `GET /metrics`: Prometheus text exposition of the pod's registry. */
export function metricsRoute(deps: AppDeps) {
  return async (ctx: Context): Promise<void> => {
    ctx.set("Content-Type", deps.metrics.registry.contentType);
    ctx.body = await deps.metrics.registry.metrics();
  };
}
