import { readdir } from "node:fs/promises";
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";

/**
 * prom-client's default metrics whose collection walks every handle on the event loop at each
 * scrape (`process._getActiveHandles()`, `process.getActiveResourcesInfo()`): one per open
 * socket, ~37 ms per scrape at 18,000 sockets and growing with them. Left out: the sockets are
 * counted by `sse_http_sockets`.
 */
const PER_HANDLE_METRICS = [
  "nodejs_active_handles",
  "nodejs_active_handles_total",
  "nodejs_active_resources",
  "nodejs_active_resources_total",
];

/**
 * Node's process metrics (prom-client's defaults), minus those that cost the event loop time in
 * proportion to the open connections: `process_open_fds` is read off the loop (prom-client reads
 * `/proc/self/fd` synchronously, ~50 ms at 18,000 descriptors, on every scrape), and
 * {@link PER_HANDLE_METRICS} are left out.
 */
function processMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of [...PER_HANDLE_METRICS, "process_open_fds"]) registry.removeSingleMetric(name);
  if (process.platform !== "linux") return;
  new Gauge({
    name: "process_open_fds",
    help: "Number of open file descriptors.",
    registers: [registry],
    // The directory is read on libuv's thread pool, not on the event loop.
    async collect() {
      try {
        // Minus the descriptor readdir itself held.
        this.set((await readdir("/proc/self/fd")).length - 1);
      } catch {
        // not readable here: the sample keeps its last value
      }
    },
  });
}

/**
 * Every bound the gateway enforces has a metric beside it, so an operator sees how close each
 * pod runs to its limits. Instruments live on a registry of their own so tests can make fresh ones.
 */
export function createMetrics(registry = new Registry(), withDefaults = true) {
  if (withDefaults) processMetrics(registry);
  const r = [registry];
  return {
    registry,
    sessions: new Gauge({
      name: "sse_sessions",
      help: "Open SSE sessions on this pod",
      registers: r,
    }),
    sessionsOpened: new Counter({
      name: "sse_sessions_opened_total",
      help: "SSE sessions opened, by how they started",
      labelNames: ["start"] as const,
      registers: r,
    }),
    sessionsClosed: new Counter({
      name: "sse_sessions_closed_total",
      help: "SSE sessions closed, by reason",
      labelNames: ["reason"] as const,
      registers: r,
    }),
    shed: new Counter({
      name: "sse_requests_shed_total",
      help: "Stream requests turned away with a retry hint, by reason",
      labelNames: ["reason"] as const,
      registers: r,
    }),
    rejected: new Counter({
      name: "sse_requests_rejected_total",
      help: "Stream requests answered with a 4xx JSON error, by error code",
      labelNames: ["code"] as const,
      registers: r,
    }),
    eventsSent: new Counter({
      name: "sse_events_sent_total",
      help: "Events written to sessions (one per message per session)",
      labelNames: ["path"] as const,
      registers: r,
    }),
    bytesSent: new Counter({
      name: "sse_bytes_sent_total",
      help: "Bytes written to SSE sockets",
      registers: r,
    }),
    notices: new Counter({
      name: "sse_notices_total",
      help: "Gap and reset notices sent",
      labelNames: ["type"] as const,
      registers: r,
    }),
    feeds: new Gauge({
      name: "sse_feeds",
      help: "Live feeds (one ordered consumer each)",
      registers: r,
    }),
    feedsLingering: new Gauge({
      name: "sse_feeds_lingering",
      help: "Feeds without sessions kept open for reconnects (FEED_LINGER_MAX)",
      registers: r,
    }),
    feedCreations: new Counter({
      name: "sse_feed_creations_total",
      help: "Feeds created (each costs a consumer and a warm-up read; FEED_CREATE_RATE, MAX_FEEDS)",
      registers: r,
    }),
    feedRefusals: new Counter({
      name: "sse_feed_refusals_total",
      help: "Requests for a new subject set shed because of MAX_FEEDS (limit) or FEED_CREATE_RATE (rate)",
      labelNames: ["reason"] as const,
      registers: r,
    }),
    warmUps: new Counter({
      name: "sse_feed_warmups_total",
      help: "Window warm-ups of new feeds, by result (complete, skipped, budget, timeout, error, cancelled)",
      labelNames: ["result"] as const,
      registers: r,
    }),
    warmUpBytes: new Counter({
      name: "sse_feed_warmup_bytes_total",
      help: "Bytes read from JetStream to warm new feeds' windows (at most FEED_WARMUP_BYTES each)",
      registers: r,
    }),
    feedRestarts: new Counter({
      name: "sse_feed_restarts_total",
      help: "Live consumers replaced by the gateway, by cause (reconnect, heartbeats, silent, behind, deleted)",
      labelNames: ["reason"] as const,
      registers: r,
    }),
    feedsStalled: new Gauge({
      name: "sse_feeds_stalled",
      help: "Feeds whose live consumer is being replaced; readiness fails while above 0",
      registers: r,
    }),
    streamChecks: new Counter({
      name: "sse_stream_checks_total",
      help: "Stream states read for feeds (watchdog, WINDOW_CHECK_MS, feed starts and restarts)",
      registers: r,
    }),
    windowTrimmed: new Counter({
      name: "sse_window_trimmed_total",
      help: "Messages taken out of windows because the stream no longer holds them, by how that was learnt",
      labelNames: ["reason"] as const,
      registers: r,
    }),
    feedMessages: new Counter({
      name: "sse_feed_messages_total",
      help: "Messages received by live feeds from JetStream",
      registers: r,
    }),
    windowMessages: new Gauge({
      name: "sse_window_messages",
      help: "Messages held in the recent windows of all feeds",
      registers: r,
    }),
    windowBytes: new Gauge({
      name: "sse_window_bytes",
      help: "Bytes held in the recent windows of all feeds",
      registers: r,
    }),
    replaysActive: new Gauge({
      name: "sse_replays_active",
      help: "Replay consumers open now",
      registers: r,
    }),
    replaysQueued: new Gauge({
      name: "sse_replays_queued",
      help: "Replays waiting for a slot (REPLAY_MAX_CONCURRENT)",
      registers: r,
    }),
    replaysStalled: new Counter({
      name: "sse_replays_stalled_total",
      help: "Replays that gave their slot back because the client's socket had not drained for REPLAY_STALL_TIMEOUT_MS",
      registers: r,
    }),
    replaysPaused: new Gauge({
      name: "sse_replays_paused",
      help: "Catch-ups paused, holding no replay slot, until their client's socket drains",
      registers: r,
    }),
    replaysClientLimited: new Counter({
      name: "sse_replays_client_limited_total",
      help: "Replays that had to wait because their client address held REPLAY_MAX_PER_CLIENT slots",
      registers: r,
    }),
    replayMessagesRead: new Counter({
      name: "sse_replay_messages_read_total",
      help: "Messages JetStream sent to replay consumers (shared runs and replays of one session): the replays' load on NATS",
      registers: r,
    }),
    replaySharedBytes: new Gauge({
      name: "sse_replay_shared_bytes",
      help: "Bytes held by the rings of shared replay runs (REPLAY_SHARED_BUFFER_BYTES)",
      registers: r,
    }),
    replaySharedSessions: new Counter({
      name: "sse_replay_shared_sessions_total",
      help: "Sessions that caught up through a shared replay run, by whether they joined one or started one, and those that fell out of a run's ring (how=fell-out)",
      labelNames: ["how"] as const,
      registers: r,
    }),
    jetstreamApiActive: new Gauge({
      name: "sse_jetstream_api_active",
      help: "JetStream API calls caused by client requests in flight now (JETSTREAM_API_MAX_CONCURRENT)",
      registers: r,
    }),
    jetstreamApiQueued: new Gauge({
      name: "sse_jetstream_api_queued",
      help: "JetStream API calls caused by client requests waiting for a slot (JETSTREAM_API_MAX_QUEUED)",
      registers: r,
    }),
    jetstreamApiRefused: new Counter({
      name: "sse_jetstream_api_refused_total",
      help: "JetStream API calls refused because JETSTREAM_API_MAX_QUEUED were waiting",
      registers: r,
    }),
    replayedEvents: new Counter({
      name: "sse_replayed_events_total",
      help: "Events delivered by replay consumers",
      registers: r,
    }),
    natsConnected: new Gauge({
      name: "sse_nats_connected",
      help: "1 while the NATS connection is up",
      registers: r,
    }),
    draining: new Gauge({ name: "sse_draining", help: "1 once shutdown has begun", registers: r }),
    httpSockets: new Gauge({
      name: "sse_http_sockets",
      help: "Open sockets on the public port (bounded by sse_http_sockets_max)",
      registers: r,
    }),
    httpSocketsMax: new Gauge({
      name: "sse_http_sockets_max",
      help: "Open sockets the public port accepts: HTTP_MAX_SOCKETS, or the bound derived from the open-file limit",
      registers: r,
    }),
    httpSocketsRefused: new Counter({
      name: "sse_http_sockets_refused_total",
      help: "Sockets of the public port closed at once, unread, by bound: total (HTTP_MAX_SOCKETS) or per_client (HTTP_MAX_SOCKETS_PER_CLIENT)",
      labelNames: ["reason"] as const,
      registers: r,
    }),
    authRefused: new Counter({
      name: "sse_auth_refused_total",
      help: "Stream requests refused by authorization, by error code (missing_token, invalid_token, token_expired, subject_not_granted)",
      labelNames: ["code"] as const,
      registers: r,
    }),
    authKeysUnavailable: new Counter({
      name: "sse_auth_keys_unavailable_total",
      help: "Stream requests shed because the JWKS could not be fetched (AUTH_JWKS_URL)",
      registers: r,
    }),
    jwksFetchFailures: new Counter({
      name: "sse_auth_jwks_fetch_failures_total",
      help: "JWKS fetches that failed (timeout, network, invalid document)",
      registers: r,
    }),
    tokensExpired: new Counter({
      name: "sse_auth_tokens_expired_total",
      help: "Open streams ended because their token expired (gateway.token_expired)",
      registers: r,
    }),
    traceSpansDropped: new Counter({
      name: "sse_trace_spans_dropped_total",
      help: "Trace spans lost, by reason: queue-full (TRACE_QUEUE_SPANS), export-failed (the collector refused or did not answer in time), shutdown (still queued when the shutdown budget ran out)",
      labelNames: ["reason"] as const,
      registers: r,
    }),
    traceSpansExported: new Counter({
      name: "sse_trace_spans_exported_total",
      help: "Trace spans the collector accepted",
      registers: r,
    }),
    traceQueueSpans: new Gauge({
      name: "sse_trace_queue_spans",
      help: "Trace spans waiting for export (bounded by sse_trace_queue_spans_max)",
      registers: r,
    }),
    traceQueueSpansMax: new Gauge({
      name: "sse_trace_queue_spans_max",
      help: "Trace spans the export queue holds: TRACE_QUEUE_SPANS, or derived from MAX_CONNECTIONS; 0 while tracing is off",
      registers: r,
    }),
    httpErrors: new Counter({
      name: "sse_http_errors_total",
      help: "Requests answered with a JSON error before any route saw them (unparsable, too slow, headers too large, Expect, CONNECT, no Host), by error code",
      labelNames: ["code"] as const,
      registers: r,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
