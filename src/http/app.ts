import Router from "@koa/router";
import Koa from "koa";
import type { AppDeps } from "./deps";
import { cors } from "./middleware/cors";
import { errors } from "./middleware/errors";
import { demoRoute } from "./routes/demo";
import { eventsRoute } from "./routes/events";
import { livezRoute, readyzRoute } from "./routes/health";
import { metricsRoute } from "./routes/metrics";

/** The Koa application: routes for events, health and metrics, behind CORS and JSON errors. */
export function createApp(deps: AppDeps): Koa {
  const app = new Koa({ proxy: deps.config.TRUST_PROXY });
  // Koa logs every error to stderr by default; ours are logged (or answered) in `errors`.
  app.silent = true;
  const router = new Router();
  const events = eventsRoute(deps);
  router.get("/events", events);
  router.get("/events/:subject", events);
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
