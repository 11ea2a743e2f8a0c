import Router from "@koa/router";
import Koa from "koa";
import type { AppDeps } from "./deps";
import { sendError } from "./errors";
import { cors } from "./middleware/cors";
import { errors } from "./middleware/errors";
import { demoRoute } from "./routes/demo";
import { livezRoute, readyzRoute } from "./routes/health";
import { metricsRoute } from "./routes/metrics";

/** The Koa application: health, metrics and demo routes, behind CORS and JSON errors. */
export function createApp(deps: AppDeps): Koa {
  const app = new Koa({ proxy: deps.config.TRUST_PROXY });
  // Koa logs every error to stderr by default; ours are logged (or answered) in `errors`.
  app.silent = true;
  const router = new Router();
  // GET /events is served before Koa (see events.ts); other methods get a JSON 405 here.
  router.all(["/events", "/events/:subject"], (ctx) =>
    sendError(
      ctx,
      405,
      "method_not_allowed",
      `${ctx.method} is not allowed on ${ctx.path}; use GET`,
    ),
  );
  router.get("/livez", livezRoute());
  router.get("/readyz", readyzRoute(deps));
  router.get("/metrics", metricsRoute(deps));
  if (deps.config.DEMO) router.get("/", demoRoute());
  app.use(errors(deps.log));
  app.use(cors(deps.config.CORS_ORIGINS));
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
