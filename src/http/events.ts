import type { IncomingMessage, ServerResponse } from "node:http";
import { JetStreamApiError } from "@nats-io/jetstream";
import { SpanStatusCode, type Span } from "@opentelemetry/api";
import { attach } from "../broker/attach";
import type { Feed } from "../broker/feed";
import { ApiQueueFullError } from "../broker/apiLimiter";
import { FeedLimitError, FeedRateError } from "../broker/feeds";
import { ReplayQueueFullError } from "../broker/replayLimiter";
import { StreamForbiddenError, StreamMismatchError, StreamNotFoundError } from "../broker/streams";
import { describeSubjectError, parseFilterSet, type SubjectError } from "../broker/subjects";
import { parseStart, type StartPosition } from "../sse/cursor";
import { encodeRetry } from "../sse/encoder";
import { Session, type CloseReason, type SessionOptions } from "../sse/session";
import { jitter } from "../sse/sessionRegistry";
import { tracer } from "../telemetry/tracing";
import { corsHeaders } from "./cors";
import type { AppDeps } from "./deps";
import { writeError, type ErrorCode } from "./errors";
import { clientAddress, header, parseEventsUrl, type UrlError, type UrlLimits } from "./request";
import { shed, type ShedReason } from "./shed";
import { SSE_HEADERS } from "./sseHeaders";

const SUBJECT_ERRORS: Record<SubjectError["type"], [number, ErrorCode]> = {
  malformed: [400, "malformed_subject"],
  forbidden: [403, "subject_forbidden"],
  overlap: [400, "overlapping_subjects"],
  "too-many": [400, "too_many_subjects"],
  empty: [400, "no_subject"],
};

const URL_ERRORS: Record<UrlError["type"], [number, ErrorCode]> = {
  malformed: [400, "malformed_request"],
  "query-too-long": [414, "query_too_long"],
  "too-many-parameters": [400, "too_many_parameters"],
};

/**
 * `GET /events/<subject>` and `GET /events?subject=a&subject=b`.
 *
 * This route is served on `node:http` directly, not through Koa: Koa keeps its context, request
 * and response objects alive for as long as a response is open (about 3 kB per connection,
 * measured), and an SSE response is open for hours. The other routes stay on Koa.
 *
 * Everything that can be wrong with the request is checked before the 200 is sent, so bad input
 * gets a status and a JSON body; after that, the only move left is to close the stream.
 */
export function eventsHandler(deps: AppDeps) {
  // One options object and one close handler for all sessions: per-connection closures
  // would stay in memory for as long as each stream is open.
  const sessionOptions: SessionOptions = {
    maxBufferBytes: deps.config.SESSION_MAX_BUFFER_BYTES,
    onClose: (session, reason) => untrack(session, reason, deps),
  };
  const urlLimits: UrlLimits = {
    maxQueryBytes: deps.config.HTTP_MAX_QUERY_BYTES,
    maxParams: deps.config.HTTP_MAX_QUERY_PARAMS,
  };
  return (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res, deps, sessionOptions, urlLimits).catch((err: unknown) => {
      deps.log.error({ err, url: req.url }, "events handler failed");
      if (!res.headersSent) writeError(res, 500, "internal", "internal error");
      else res.destroy();
    });
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  deps: AppDeps,
  sessionOptions: SessionOptions,
  urlLimits: UrlLimits,
): Promise<void> {
  const { config, metrics } = deps;
  const cors = corsHeaders(config.CORS_ORIGINS, header(req, "origin"));
  const reject = (status: number, code: ErrorCode, message: string) => {
    metrics.rejected.inc({ code });
    writeError(res, status, code, message, cors);
  };

  const url = parseEventsUrl(req.url ?? "/events", urlLimits);
  if (!url.ok) {
    const [status, code] = URL_ERRORS[url.error.type];
    return reject(status, code, url.error.message);
  }
  const q = url.query.subject;
  const subjects = [
    ...(url.subject === undefined ? [] : [url.subject]),
    ...(q === undefined ? [] : Array.isArray(q) ? q : [q]),
  ];
  const filters = parseFilterSet(subjects, {
    allowWildcards: config.ALLOW_WILDCARDS,
    allowKv: config.ALLOW_KV,
    maxSubjects: config.MAX_SUBJECTS,
    maxLength: config.MAX_SUBJECT_LENGTH,
  });
  if (!filters.ok) {
    const [status, code] = SUBJECT_ERRORS[filters.error.type];
    return reject(status, code, describeSubjectError(filters.error));
  }
  const start = parseStart({
    header: header(req, "last-event-id"),
    query: url.query,
    maxLast: config.MAX_LAST,
  });
  if (!start.ok)
    return reject(
      400,
      start.error.type === "invalid-cursor" ? "malformed_cursor" : "invalid_start",
      start.error.message,
    );

  if (deps.draining) return shed(req, res, deps, "draining", cors);
  const nats = deps.nats;
  if (!nats || !nats.broker.connected()) return shed(req, res, deps, "nats-unavailable", cors);
  const client = clientAddress(req, config.TRUST_PROXY);
  const refused = deps.sessions.admit(client);
  if (refused) return shed(req, res, deps, refused, cors);

  let stream: string;
  const session = new Session(res, sessionOptions);
  let feed: Feed;
  try {
    stream = await nats.resolver.resolve(filters.value);
  } catch (err) {
    deps.sessions.release(client);
    if (!res.headersSent && !res.destroyed)
      answerLookupError(req, res, deps, err, filters.value, reject, cors);
    return;
  }
  try {
    feed = await nats.feeds.join(stream, filters.value, session);
  } catch (err) {
    // The request was judged fine; starting the feed failed on the server's side (a limit,
    // the stream deleted a moment ago, NATS trouble): an answer the client retries.
    deps.sessions.release(client);
    // The feed bounds are expected under load or abuse: counted (sse_requests_shed_total), not
    // logged once per request.
    const reason: ShedReason =
      err instanceof FeedLimitError
        ? "feed-limit"
        : err instanceof FeedRateError
          ? "feed-rate"
          : "nats-unavailable";
    if (reason === "nats-unavailable")
      deps.log.warn({ err, stream, filters: filters.value }, "feed could not start");
    if (!res.headersSent && !res.destroyed) shed(req, res, deps, reason, cors);
    return;
  }
  if (session.closed || deps.draining) {
    // The client left, the feed ended or shutdown began while the feed was starting.
    nats.feeds.leave(feed, session);
    deps.sessions.release(client);
    // Still connected (the feed ended, or shutdown began): an answer that brings it back.
    if (!res.headersSent && !res.destroyed)
      shed(req, res, deps, deps.draining ? "draining" : "nats-unavailable", cors);
    return;
  }

  res.writeHead(200, { ...cors, ...SSE_HEADERS });
  res.socket?.setNoDelay(true);
  session.control(encodeRetry(config.RETRY_MS));
  const span = tracer().startSpan("sse.session", {
    attributes: {
      "messaging.system": "nats",
      "messaging.destination.name": filters.value.join(","),
      "sse.stream": stream,
      "sse.start": start.value.kind,
      ...cursorAttributes(start.value),
    },
  });
  const tracked: Tracked = { feed, span, client };
  session.meta = tracked;
  deps.metrics.sessions.inc();
  deps.metrics.sessionsOpened.inc({ start: start.value.kind });
  deps.sessions.add(session);
  if (session.closed) return untrack(session, session.closeReason ?? "client", deps);

  try {
    await attach(session, feed, start.value, {
      js: nats.broker.js,
      jsm: nats.broker.jsm,
      resolver: nats.resolver,
      limiter: nats.limiter,
      metrics,
      eventHeader: config.EVENT_TYPE_HEADER,
      replayBatch: config.REPLAY_BATCH,
      client,
      shedRetryMs: config.SHED_RETRY_MS,
    });
  } catch (err) {
    if (session.closed) return;
    const full = err instanceof ReplayQueueFullError;
    span.recordException(err as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
    deps.log.warn({ err, stream, filters: filters.value }, "catch-up failed; closing the session");
    // The client resumes from its last event, on this pod or another.
    session.close(full ? "replay-queue-full" : "replay-failed", jitter(config.SHED_RETRY_MS));
  }
}

/** What the route keeps with an open session (`session.meta`) for its clean-up. */
interface Tracked {
  feed: Feed;
  span: Span;
  client: string;
}

/** The clean-up of an open session, however it closed. Runs once per tracked session. */
function untrack(session: Session, reason: CloseReason, deps: AppDeps): void {
  const t = session.meta as Tracked | undefined;
  if (!t) return; // closed before its stream started; `handle` cleaned up
  session.meta = undefined;
  deps.sessions.release(t.client);
  deps.sessions.remove(session);
  deps.nats?.feeds.leave(t.feed, session);
  deps.metrics.sessions.dec();
  deps.metrics.sessionsClosed.inc({ reason });
  t.span.setAttributes({ "sse.close_reason": reason, "sse.events": session.events });
  if (session.lastSeq !== undefined) t.span.setAttribute("sse.last_seq", session.lastSeq);
  t.span.end();
}

function cursorAttributes(start: StartPosition): Record<string, number | string> {
  switch (start.kind) {
    case "after":
      return { "sse.cursor": start.seq };
    case "from":
      return { "sse.from": start.seq };
    case "last":
      return { "sse.last": start.count };
    case "since":
      return { "sse.since": start.time.toISOString() };
    case "new":
      return {};
  }
}

/**
 * Maps a failure to find the stream to an answer. The public message names only the request's
 * own subjects: the resolver's errors (and JetStream's) may list other streams of the account
 * and their subjects, which are not the client's business. The details go to the debug log.
 */
function answerLookupError(
  req: IncomingMessage,
  res: ServerResponse,
  deps: AppDeps,
  err: unknown,
  filters: readonly string[],
  reject: (status: number, code: ErrorCode, message: string) => void,
  cors: Record<string, string>,
): void {
  const asked =
    filters.length === 1
      ? `subject "${filters[0]}"`
      : `subjects ${filters.map((f) => `"${f}"`).join(", ")}`;
  const refuse = (status: number, code: ErrorCode, message: string) => {
    deps.log.debug({ err, filters }, "stream lookup refused the request");
    reject(status, code, message);
  };
  if (err instanceof StreamNotFoundError)
    return refuse(404, "stream_not_found", `no stream captures ${asked}`);
  if (err instanceof StreamMismatchError)
    return refuse(
      400,
      "subjects_span_streams",
      `${asked}: not captured whole by exactly one stream; subscribe to narrower subjects, ` +
        "or open one connection per stream",
    );
  if (err instanceof StreamForbiddenError)
    return refuse(403, "subject_forbidden", `${asked}: captured by a stream that is not served`);
  if (err instanceof JetStreamApiError) {
    // The server judged the request itself (e.g. a filter it will not accept): the client's
    // input, so a 4xx, never a 5xx.
    if (err.status === 404) return refuse(404, "stream_not_found", `no stream captures ${asked}`);
    if (err.status >= 400 && err.status < 500)
      return refuse(400, "malformed_subject", `JetStream does not accept ${asked} as a filter`);
  }
  // A full API queue is expected under a flood of new subjects: counted, not logged per request.
  if (err instanceof ApiQueueFullError) return shed(req, res, deps, "jetstream-busy", cors);
  deps.log.warn({ err }, "stream lookup failed; shedding the request");
  shed(req, res, deps, "nats-unavailable", cors);
}
