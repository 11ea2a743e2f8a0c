import type { Server } from "node:http";
import { ROOT_CONTEXT, context } from "@opentelemetry/api";
import type { AddressInfo } from "node:net";
import { createAuthorizer } from "./auth/createAuthorizer";
import { ExpiryWheel } from "./auth/expiryWheel";
import { ApiLimiter } from "./broker/apiLimiter";
import { TOKEN_EXPIRED_EVENT } from "./broker/attach";
import { encodeNotice, encodeUnnumberedNotice } from "./sse/encoder";
import type { Session } from "./sse/session";
import { connectBroker, type Broker } from "./broker/connection";
import { FeedRegistry } from "./broker/feeds";
import { ReplayLimiter } from "./broker/replayLimiter";
import { SharedReplays } from "./broker/sharedReplay";
import { StreamResolver } from "./broker/streams";
import { WindowBudget } from "./broker/window";
import type { Config } from "./config";
import { createAdminApp, createApp } from "./http/app";
import type { AppDeps } from "./http/deps";
import { eventsHandler } from "./http/events";
import { isEventsRequest } from "./http/request";
import { createHttpServer, type HttpServerOptions } from "./http/server";
import { openFileLimit, socketBounds, SocketLimits } from "./http/socketLimits";
import { SessionRegistry, jitter } from "./sse/sessionRegistry";
import type { Logger } from "./telemetry/logger";
import type { Metrics } from "./telemetry/metrics";

/** A running gateway: its HTTP server and the way to stop it. */
export interface Gateway {
  readonly server: Server;
  readonly port: number;
  /** The admin server: /livez, /readyz, /metrics. */
  readonly adminServer: Server;
  readonly adminPort: number;
  readonly deps: AppDeps;
  /** Resolves once NATS is connected (the HTTP server answers before that). */
  readonly natsReady: Promise<void>;
  /** Drains sessions, closes the server and NATS; bounded by SHUTDOWN_TIMEOUT_MS. */
  shutdown(): Promise<void>;
  /**
   * Hurries a shutdown (a second signal): every open session is closed at once, each with a
   * jittered `retry:`, and the sockets are flushed (at most {@link FLUSH_MS}). Resolves then; the
   * caller exits without waiting for the rest (NATS drain).
   */
  shutdownNow(): Promise<void>;
}

/** How long shutdown waits for sockets to hand their last bytes (`retry:`) to the kernel, ms. */
export const FLUSH_MS = 1_000;

/**
 * Starts the HTTP server at once (so `/livez` answers and `/readyz` tells the truth while NATS
 * is still unreachable), then connects to NATS in the background, retrying forever.
 */
export async function startGateway(
  config: Config,
  log: Logger,
  metrics: Metrics,
): Promise<Gateway> {
  const sessions = new SessionRegistry(config.MAX_CONNECTIONS, config.MAX_CONNECTIONS_PER_CLIENT);
  // A stream whose token expires gets a notice naming where it stopped, then ends with a
  // `retry:`: the page fetches a fresh token and reopens from there (a cookie-based page may
  // just refresh the cookie and let EventSource reconnect).
  const expiry = new ExpiryWheel<Session>(
    (s) => {
      metrics.tokensExpired.inc();
      metrics.notices.inc({ type: "token_expired" });
      const id = s.lastSeq;
      if (id !== undefined && id > 0)
        s.notice(
          encodeNotice(TOKEN_EXPIRED_EVENT, id, {
            lastEventId: id,
            message: "the token expired: reconnect with a fresh one, from lastEventId",
          }),
          id,
        );
      // Nothing delivered yet and no cursor (a `since` or `last` start still looking for its
      // position): no id, or the client would resume from the stream's start; it reopens with
      // the start it asked for.
      else
        s.control(
          encodeUnnumberedNotice(TOKEN_EXPIRED_EVENT, {
            lastEventId: null,
            message: "the token expired: reconnect with a fresh one, with the same start",
          }),
        );
      s.close("token-expired", jitter(config.RETRY_MS));
    },
    1_000,
    Date.now,
    // The timer starts during some request; its ticks belong to none (logs, spans, timers).
    (fn, ms) => context.with(ROOT_CONTEXT, () => setInterval(fn, ms)),
  );
  const deps: AppDeps = {
    config,
    log,
    metrics,
    sessions,
    draining: false,
    expiry,
    auth: await createAuthorizer(config, metrics, log),
  };
  const app = createApp(deps);
  const koa = app.callback();
  const events = eventsHandler(deps);
  const http: HttpServerOptions = {
    maxHeaderBytes: config.HTTP_MAX_HEADER_BYTES,
    headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS,
    requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS,
    keepAliveTimeoutMs: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
  };
  // The streaming route goes straight to node:http (see http/events.ts); the rest to Koa.
  const server = createHttpServer(
    http,
    (req, res) => (isEventsRequest(req) ? events(req, res) : koa(req, res)),
    metrics,
  );
  const bounds = socketBounds(config, openFileLimit());
  for (const warning of bounds.warnings) log.warn(warning);
  const sockets = new SocketLimits(server, bounds, metrics);
  // A reconnect storm opens thousands of connections at once; Node's default backlog (511)
  // would drop SYNs and delay them by whole seconds. The kernel caps it at somaxconn.
  const port = await listen(server, config.PORT, config.HOST, config.HTTP_BACKLOG);
  const adminServer = createHttpServer(http, createAdminApp(deps).callback(), metrics);
  let adminPort: number;
  try {
    adminPort = await listen(adminServer, config.ADMIN_PORT, config.ADMIN_HOST, 511);
  } catch (err) {
    server.close();
    throw err;
  }
  log.info(
    { port, adminPort, maxSockets: bounds.maxSockets, maxSocketsPerClient: bounds.maxPerClient },
    "listening",
  );
  sessions.startHeartbeat(config.HEARTBEAT_MS);

  let broker: Broker | undefined;
  let stopping = false;
  const natsReady = connectBroker(config, log, metrics).then(async (b) => {
    broker = b;
    if (stopping) return b.shutdown();
    // Every JetStream API call a request can cause goes through this one limiter, stream
    // lookups for subjects not seen before included.
    const api = new ApiLimiter(
      config.JETSTREAM_API_MAX_CONCURRENT,
      config.JETSTREAM_API_MAX_QUEUED,
      (a, q) => {
        metrics.jetstreamApiActive.set(a);
        metrics.jetstreamApiQueued.set(q);
      },
      () => metrics.jetstreamApiRefused.inc(),
    );
    const resolver = new StreamResolver(
      b.jsm,
      config.STREAM_CACHE_TTL_MS,
      config.ALLOW_KV,
      Date.now,
      (call) => api.run(call),
    );
    const feeds = new FeedRegistry(
      {
        eventHeader: config.EVENT_TYPE_HEADER,
        windowMessages: config.WINDOW_MESSAGES,
        windowBytes: config.WINDOW_BYTES,
        windowBudget: new WindowBudget(config.WINDOW_TOTAL_BYTES),
        lingerMs: config.FEED_LINGER_MS,
        maxLingering: config.FEED_LINGER_MAX,
        coalesceMs: config.FEED_COALESCE_MS,
        warmUpTimeoutMs: config.NATS_REQUEST_TIMEOUT_MS,
        maxFeeds: config.MAX_FEEDS,
        createRate: config.FEED_CREATE_RATE,
        warmUpBytes: config.FEED_WARMUP_BYTES,
        heartbeatMs: config.FEED_HEARTBEAT_MS,
        watchdogMs: config.FEED_WATCHDOG_MS,
        windowCheckMs: config.WINDOW_CHECK_MS,
        traceBatches: config.TRACE_BATCHES,
      },
      { js: b.js, jsm: b.jsm, resolver, metrics, log, nc: b.nc },
      // The stream went away: its clients come back (here or elsewhere) and get a reset
      // notice or a 404, whichever now applies.
      (ended) => ended.forEach((s) => s.close("feed-ended", jitter(config.SHED_RETRY_MS))),
    );
    const limiter = new ReplayLimiter(
      config.REPLAY_MAX_CONCURRENT,
      config.REPLAY_MAX_QUEUED,
      (a, q) => {
        metrics.replaysActive.set(a);
        metrics.replaysQueued.set(q);
      },
      {
        maxPerClient: config.REPLAY_MAX_PER_CLIENT,
        stallMs: config.REPLAY_STALL_TIMEOUT_MS,
        onClientLimited: () => metrics.replaysClientLimited.inc(),
        api,
      },
    );
    limiter.shared = new SharedReplays(b.js, limiter, {
      eventHeader: config.EVENT_TYPE_HEADER,
      batch: config.REPLAY_BATCH,
      bufferBytes: config.REPLAY_SHARED_BUFFER_BYTES,
      onRead: () => metrics.replayMessagesRead.inc(),
      onBytes: (n) => metrics.replaySharedBytes.set(n),
      onSession: (how) => metrics.replaySharedSessions.inc({ how }),
    });
    deps.nats = { broker: b, resolver, feeds, limiter };
  });
  natsReady.catch((err) => log.error({ err }, "NATS connection failed"));

  let done: Promise<void> | undefined;
  const shutdown = () =>
    (done ??= (async () => {
      stopping = true;
      deps.draining = true;
      metrics.draining.set(1);
      log.info({ sessions: sessions.size, drainWindowMs: config.DRAIN_WINDOW_MS }, "draining");
      const work = (async () => {
        // RETRY_MS, not SHED_RETRY_MS: the drain window already spreads these reconnects, and
        // ready pods are waiting for them; a longer pause would only lengthen the gap in delivery.
        await sessions.drain(config.DRAIN_WINDOW_MS, config.RETRY_MS);
        sessions.stopHeartbeat();
        expiry.stop();
        // Before closing the server: it destroys sockets whose response has ended, with
        // whatever they still buffer (the `retry:` of a client that reads slowly).
        await sockets.flushed(FLUSH_MS);
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
        await deps.nats?.feeds.closeAll();
        await broker?.shutdown();
      })();
      const timeout = new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          log.warn("shutdown timed out; exiting anyway");
          resolve();
        }, config.SHUTDOWN_TIMEOUT_MS);
        t.unref();
        void work.finally(() => clearTimeout(t));
      });
      await Promise.race([work, timeout]);
      // Last: probes keep telling the truth (503, draining) until the very end.
      adminServer.close();
      adminServer.closeAllConnections();
      log.info("stopped");
    })());
  const shutdownNow = async () => {
    // Readiness, shedding and the rest of the sequence, if not begun yet; its failures are
    // for its first caller to report.
    shutdown().catch(() => undefined);
    await sessions.drain(0, config.SHED_RETRY_MS);
    await sockets.flushed(FLUSH_MS);
    log.info("sessions closed at once");
  };
  return {
    server,
    port,
    adminServer,
    adminPort,
    deps,
    natsReady: natsReady.then(() => undefined),
    shutdown,
    shutdownNow,
  };
}

/** Listens and resolves with the bound port (PORT=0 picks a free one). */
function listen(server: Server, port: number, host: string, backlog: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, backlog, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
