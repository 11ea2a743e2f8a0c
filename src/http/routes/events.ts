import { JetStreamApiError } from "@nats-io/jetstream";
import { SpanStatusCode } from "@opentelemetry/api";
import type { Context } from "koa";
import { attach } from "../../broker/attach";
import type { Feed } from "../../broker/feed";
import { ReplayQueueFullError } from "../../broker/replayLimiter";
import {
  StreamForbiddenError,
  StreamMismatchError,
  StreamNotFoundError,
} from "../../broker/streams";
import { describeSubjectError, parseFilterSet, type SubjectError } from "../../broker/subjects";
import { parseStart, type StartPosition } from "../../sse/cursor";
import { encodeRetry } from "../../sse/encoder";
import { Session } from "../../sse/session";
import { jitter } from "../../sse/sessionRegistry";
import { tracer } from "../../telemetry/tracing";
import type { AppDeps } from "../deps";
import { sendError, type ErrorCode } from "../errors";
import { shed } from "../shed";
import { SSE_HEADERS } from "../sseHeaders";

const SUBJECT_ERRORS: Record<SubjectError["type"], [number, ErrorCode]> = {
  malformed: [400, "malformed_subject"],
  forbidden: [403, "subject_forbidden"],
  overlap: [400, "overlapping_subjects"],
  "too-many": [400, "too_many_subjects"],
  empty: [400, "no_subject"],
};

/**
 * `GET /events/<subject>` and `GET /events?subject=a&subject=b`. Everything that can be wrong
 * with the request is checked before the 200 is sent, so bad input gets a status and a JSON
 * body; after that, the only move left is to close the stream.
 */
export function eventsRoute(deps: AppDeps) {
  return async (ctx: Context): Promise<void> => {
    const { config, metrics } = deps;
    const reject = (status: number, code: ErrorCode, message: string) => {
      metrics.rejected.inc({ code });
      sendError(ctx, status, code, message);
    };

    const subjects = [
      ...(typeof ctx.params?.subject === "string" ? [ctx.params.subject as string] : []),
      ...asList(ctx.query.subject),
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
      header: ctx.get("last-event-id") || undefined,
      query: ctx.query,
      maxLast: config.MAX_LAST,
    });
    if (!start.ok)
      return reject(
        400,
        start.error.type === "invalid-cursor" ? "malformed_cursor" : "invalid_start",
        start.error.message,
      );

    if (deps.draining) return shed(ctx, deps, "draining");
    const nats = deps.nats;
    if (!nats || !nats.broker.connected()) return shed(ctx, deps, "nats-unavailable");
    const ticket = deps.sessions.admit(ctx.ip);
    if (ticket === "full" || ticket === "client-limit") return shed(ctx, deps, ticket);

    let stream: string;
    try {
      stream = await nats.resolver.resolve(filters.value);
    } catch (err) {
      ticket.release();
      return answerLookupError(ctx, deps, err, reject);
    }

    const res = ctx.res;
    const session = new Session(res, { maxBufferBytes: config.SESSION_MAX_BUFFER_BYTES });
    let feed: Feed;
    try {
      feed = await nats.feeds.join(stream, filters.value, session);
    } catch (err) {
      ticket.release();
      return answerLookupError(ctx, deps, err, reject);
    }
    if (session.closed || deps.draining) {
      // The client left (or shutdown began) while the feed was starting.
      nats.feeds.leave(feed, session);
      ticket.release();
      if (!session.closed) shed(ctx, deps, "draining");
      return;
    }

    // From here on the response is ours: Koa must not touch it.
    ctx.respond = false;
    res.writeHead(200, SSE_HEADERS); // merged with headers already set (CORS)
    res.socket?.setNoDelay(true);
    res.socket?.setKeepAlive(true);
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
    metrics.sessions.inc();
    metrics.sessionsOpened.inc({ start: start.value.kind });
    deps.sessions.add(session);
    const onClose = () => {
      const reason = session.closeReason ?? "client";
      ticket.release();
      deps.sessions.remove(session);
      nats.feeds.leave(feed, session);
      metrics.sessions.dec();
      metrics.sessionsClosed.inc({ reason });
      span.setAttributes({ "sse.close_reason": reason, "sse.events": session.events });
      if (session.lastSeq !== undefined) span.setAttribute("sse.last_seq", session.lastSeq);
      span.end();
    };
    session.signal.addEventListener("abort", onClose, { once: true });
    if (session.closed) return onClose();

    try {
      await attach(session, feed, start.value, {
        js: nats.broker.js,
        jsm: nats.broker.jsm,
        resolver: nats.resolver,
        limiter: nats.limiter,
        metrics,
        eventHeader: config.EVENT_TYPE_HEADER,
        replayBatch: config.REPLAY_BATCH,
      });
    } catch (err) {
      if (session.closed) return;
      const full = err instanceof ReplayQueueFullError;
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      deps.log.warn(
        { err, stream, filters: filters.value },
        "catch-up failed; closing the session",
      );
      // The client resumes from its last event, on this pod or another.
      session.close(full ? "replay-queue-full" : "replay-failed", jitter(config.SHED_RETRY_MS));
    }
  };
}

function asList(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
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

/** Maps a failure to find the stream or start the feed to an answer. */
function answerLookupError(
  ctx: Context,
  deps: AppDeps,
  err: unknown,
  reject: (status: number, code: ErrorCode, message: string) => void,
): void {
  if (err instanceof StreamNotFoundError) return reject(404, "stream_not_found", err.message);
  if (err instanceof StreamMismatchError) return reject(400, "subjects_span_streams", err.message);
  if (err instanceof StreamForbiddenError) return reject(403, "subject_forbidden", err.message);
  if (err instanceof JetStreamApiError) {
    // The server judged the request itself (e.g. a filter it will not accept): the client's
    // input, so a 4xx with the server's words, never a 5xx.
    if (err.status === 404) return reject(404, "stream_not_found", err.message);
    if (err.status >= 400 && err.status < 500) return reject(400, "malformed_subject", err.message);
  }
  deps.log.warn({ err }, "stream lookup failed; shedding the request");
  shed(ctx, deps, "nats-unavailable");
}
