import type { Context } from "koa";
import type { AppDeps } from "../deps";

/** `GET /livez`: the process is up and its event loop answers. Never depends on NATS. */
export function livezRoute() {
  return (ctx: Context): void => {
    ctx.set("Cache-Control", "no-store");
    ctx.body = { status: "ok" };
  };
}

// Kubelets and load balancers may probe often; JetStream is asked at most this often.
const JETSTREAM_PROBE_MS = 1_000;

/**
 * `GET /readyz`: 200 only while this pod should receive new streams: NATS connected,
 * JetStream answering, below the connection limit, not draining, no feed stalled (its live
 * consumer being replaced: its clients are not getting messages). Otherwise 503 with the
 * failing checks, so the Service steers browsers to other pods.
 */
export function readyzRoute(deps: AppDeps) {
  let probe: { at: number; ok: Promise<boolean> } | undefined;
  const jetstream = (): Promise<boolean> => {
    const nats = deps.nats;
    if (!nats) return Promise.resolve(false);
    const now = Date.now();
    if (!probe || now - probe.at > JETSTREAM_PROBE_MS)
      probe = { at: now, ok: nats.broker.jetstreamReachable() };
    return probe.ok;
  };
  return async (ctx: Context): Promise<void> => {
    const feeds = deps.nats?.feeds;
    const stalled = feeds?.stalled ?? 0;
    const checks = {
      nats: deps.nats?.broker.connected() ?? false,
      jetstream: await jetstream(),
      capacity: !deps.sessions.full,
      draining: deps.draining,
      feeds: stalled === 0,
    };
    const ready =
      checks.nats && checks.jetstream && checks.capacity && !checks.draining && checks.feeds;
    ctx.status = ready ? 200 : 503;
    ctx.set("Cache-Control", "no-store");
    ctx.body = {
      status: ready ? "ready" : "not ready",
      checks,
      sessions: deps.sessions.used,
      maxSessions: deps.config.MAX_CONNECTIONS,
      feeds: { open: feeds?.size ?? 0, stalled, max: deps.config.MAX_FEEDS },
    };
  };
}
