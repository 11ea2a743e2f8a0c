import Router from "@koa/router";
import Koa from "koa";
import type { AppDeps } from "./deps";
import { sendError } from "./errors";
import { cors } from "./middleware/cors";
import { errors } from "./middleware/errors";
import { demoRoute } from "./routes/demo";
import { demoTokenRoute } from "./routes/demoToken";
import { livezRoute, readyzRoute } from "./routes/health";
import { metricsRoute } from "./routes/metrics";

/**
 * The public Koa application: everything on PORT except `GET /events` (served on node:http
 * directly): JSON 405s for other methods on /events, the demo page, behind CORS and JSON errors.
 * Probes and metrics are not here but on the admin port (see `createAdminApp`).
 */
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
  if (deps.config.DEMO) router.get("/", demoRoute());
  if (deps.config.DEMO && deps.config.AUTH_JWT_SECRET)
    router.get(
      "/demo/token",
      demoTokenRoute(deps.config.AUTH_JWT_SECRET, deps.config.AUTH_JWT_SUBSCRIBE_CLAIM),
    );
  app.use(errors(deps.log));
  app.use(cors(deps.config.CORS_ORIGINS));
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

/**
 * The admin application on ADMIN_PORT: `/livez`, `/readyz` and `/metrics`. A port of its own,
 * which the public Service does not route, so a flood of clients on the public port cannot fail
 * the kubelet's probes (and restart a pod that is merely busy), and metrics are not public.
 */
export function createAdminApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.silent = true;
  const router = new Router();
  router.get("/livez", livezRoute());
  router.get("/readyz", readyzRoute(deps));
  router.get("/metrics", metricsRoute(deps));
  app.use(errors(deps.log));
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
