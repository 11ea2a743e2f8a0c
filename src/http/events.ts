import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { JetStreamApiError } from "@nats-io/jetstream";
import { SpanKind, context, type Attributes } from "@opentelemetry/api";
import { attach, type CatchUpStep } from "../broker/attach";
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
import { firstUncovered } from "../auth/subjectGrants";
import type { VerifiedToken } from "../auth/tokenVerifier";
import type { Config } from "../config";
import type { AdmissionTicket } from "../sse/sessionRegistry";
import { clientAddress, isPublicAddress, proxyTrust, type ClientAddress } from "./clientAddress";
import { header, parseEventsUrl, type UrlError, type UrlLimits } from "./request";
import { RequestSpan, redactQuery } from "./requestSpan";
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
  const trust = proxyTrust(deps.config);
  return (req: IncomingMessage, res: ServerResponse): void => {
    const client = clientAddress(req, trust);
    const rs = RequestSpan.start(req, routeOf(req), client.address);
    const run = () =>
      handle(req, res, deps, sessionOptions, urlLimits, rs, client).catch((err: unknown) => {
        deps.log.error({ err, url: redactUrl(req.url) }, "events handler failed");
        rs.span.recordException(err as Error);
        if (!res.headersSent) {
          writeError(res, 500, "internal", "internal error");
          rs.reject(500, "internal", "internal error");
        } else res.destroy();
      });
    // The request's work runs with its span active: log lines carry its ids, and spans the
    // work starts (the catch-up) are its children.
    if (rs.recording) context.with(rs.context, run);
    else void run();
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  deps: AppDeps,
  sessionOptions: SessionOptions,
  urlLimits: UrlLimits,
  rs: RequestSpan,
  client: ClientAddress,
): Promise<void> {
  const { config, metrics } = deps;
  const cors = corsHeaders(config.CORS_ORIGINS, header(req, "origin"));
  const reject = (
    status: number,
    code: ErrorCode,
    message: string,
    headers?: Record<string, string>,
  ) => {
    metrics.rejected.inc({ code });
    writeError(res, status, code, message, headers ? { ...cors, ...headers } : cors);
    rs.reject(status, code, message);
  };
  const turnAway = (reason: ShedReason) => {
    const answer = shed(req, res, deps, reason, cors);
    rs.shed(reason, answer.status, answer.code);
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

  // The allowlist, before any token or NATS work: what the gateway does not expose at all.
  if (config.SUBJECT_ALLOWLIST.length > 0) {
    const outside = firstUncovered(config.SUBJECT_ALLOWLIST, filters.value);
    if (outside !== undefined)
      return reject(
        403,
        "subject_not_allowed",
        `subject "${outside}" is not served by this gateway`,
      );
  }
  let token: VerifiedToken | undefined;
  if (deps.auth) {
    const decision = await deps.auth.authorize(req.headers, url.query, filters.value);
    if (res.destroyed) return rs.end({ "sse.close_reason": "client" });
    if (decision.type === "unavailable") {
      deps.metrics.authKeysUnavailable.inc();
      return turnAway("auth-unavailable");
    }
    if (decision.type === "refused") {
      deps.metrics.authRefused.inc({ code: decision.code });
      return reject(decision.status, decision.code, decision.message, {
        "WWW-Authenticate": decision.challenge,
      });
    }
    token = decision.token;
    if (rs.recording)
      rs.span.setAttribute("sse.auth", token ? (decision.source ?? "token") : "anonymous");
  }

  if (deps.draining) return turnAway("draining");
  const nats = deps.nats;
  if (!nats || !nats.broker.connected()) return turnAway("nats-unavailable");
  const key = limitKey(config.CLIENT_LIMIT_BY, deps.auth !== undefined, client, token);
  const ticket = deps.sessions.admit(key);
  if (typeof ticket === "string") return turnAway(ticket);
  let opened = false;
  try {
    opened = await openStream(req, res, deps, sessionOptions, rs, {
      ticket,
      key,
      token,
      cors,
      filters: filters.value,
      start: start.value,
      reject,
      turnAway,
    });
  } finally {
    // Every path gives the slot back: an open session through its clean-up (untrack), every
    // other one here, thrown errors included. Idempotent: releasing twice is harmless.
    if (!opened) ticket.release();
  }
}

/** What {@link openStream} needs from the request's checks. */
interface Admitted {
  ticket: AdmissionTicket;
  /** The per-client key the ticket counts against; also the replay share's. */
  key: string | undefined;
  token: VerifiedToken | undefined;
  cors: Record<string, string>;
  filters: readonly string[];
  start: StartPosition;
  reject: (status: number, code: ErrorCode, message: string) => void;
  turnAway: (reason: ShedReason) => void;
}

/**
 * From an admitted request to an open stream, or an answer. Resolves true once the session is
 * open (its clean-up then owns the admission ticket), false when the request was answered
 * otherwise.
 */
async function openStream(
  req: IncomingMessage,
  res: ServerResponse,
  deps: AppDeps,
  sessionOptions: SessionOptions,
  rs: RequestSpan,
  a: Admitted,
): Promise<boolean> {
  const { config, metrics } = deps;
  const { cors, reject, turnAway } = a;
  const nats = deps.nats;
  if (!nats) {
    turnAway("nats-unavailable");
    return false;
  }
  let stream: string;
  const session = new Session(res, sessionOptions);
  let feed: Feed;
  try {
    stream = await nats.resolver.resolve(a.filters);
  } catch (err) {
    if (!res.headersSent && !res.destroyed)
      answerLookupError(deps, err, a.filters, reject, turnAway);
    else rs.end({ "sse.close_reason": "client" });
    return false;
  }
  try {
    feed = await nats.feeds.join(stream, a.filters, session);
  } catch (err) {
    // The request was judged fine; starting the feed failed on the server's side (a limit,
    // the stream deleted a moment ago, NATS trouble): an answer the client retries.
    // The feed bounds are expected under load or abuse: counted (sse_requests_shed_total), not
    // logged once per request.
    const reason: ShedReason =
      err instanceof FeedLimitError
        ? "feed-limit"
        : err instanceof FeedRateError
          ? "feed-rate"
          : "nats-unavailable";
    if (reason === "nats-unavailable")
      deps.log.warn({ err, stream, filters: a.filters }, "feed could not start");
    if (!res.headersSent && !res.destroyed) turnAway(reason);
    else rs.end({ "sse.close_reason": "client" });
    return false;
  }
  if (session.closed || deps.draining) {
    // The client left, the feed ended or shutdown began while the feed was starting.
    nats.feeds.leave(feed, session);
    // Still connected (the feed ended, or shutdown began): an answer that brings it back.
    if (!res.headersSent && !res.destroyed)
      turnAway(deps.draining ? "draining" : "nats-unavailable");
    else rs.end({ "sse.close_reason": "client" });
    return false;
  }

  // Tracked before the 200 is written: whatever throws from here on, the session's clean-up
  // (untrack) finds everything it must give back.
  const t: Tracked = {
    feed,
    rs,
    ticket: a.ticket,
    // The same clock skew as at connect: a token accepted within the leeway is not cut a
    // second later (a cookie-based client would loop until the leeway ran out).
    expiresAt:
      a.token?.expiresAt === undefined
        ? undefined
        : a.token.expiresAt + config.AUTH_JWT_LEEWAY_S * 1_000,
    socket: res.socket ?? undefined,
    bytesBefore: res.socket?.bytesWritten ?? 0,
    catchUp: "none",
    replayed: 0,
  };
  session.meta = t;
  if (t.expiresAt !== undefined) deps.expiry.add(session, t.expiresAt);
  deps.metrics.sessions.inc();
  deps.metrics.sessionsOpened.inc({ start: a.start.kind });
  deps.sessions.add(session);
  session.begin({ ...cors, ...SSE_HEADERS }, encodeRetry(config.RETRY_MS));
  if (rs.recording) rs.span.setAttributes(sessionAttributes(a.filters, stream, a.start));
  if (deps.log.isLevelEnabled("debug"))
    deps.log.debug({ stream, filters: a.filters, start: a.start.kind }, "session opened");
  if (session.closed) {
    untrack(session, session.closeReason ?? "client", deps);
    return true;
  }

  // The catch-up (admission to live) as a child span: how long a resume took, and how.
  const catchUp = rs.recording
    ? tracer().startSpan(`catch-up ${stream}`, { kind: SpanKind.INTERNAL })
    : undefined;
  try {
    await attach(session, feed, a.start, {
      js: nats.broker.js,
      jsm: nats.broker.jsm,
      resolver: nats.resolver,
      limiter: nats.limiter,
      metrics,
      eventHeader: config.EVENT_TYPE_HEADER,
      replayBatch: config.REPLAY_BATCH,
      client: a.key,
      shedRetryMs: config.SHED_RETRY_MS,
      onStep: rs.recording ? (step) => recordStep(t, step) : undefined,
    });
  } catch (err) {
    catchUp?.recordException(err as Error);
    catchUp?.setAttribute("error.type", "replay-failed");
    if (session.closed) return true;
    const full = err instanceof ReplayQueueFullError;
    rs.span.recordException(err as Error);
    deps.log.warn({ err, stream, filters: a.filters }, "catch-up failed; closing the session");
    // The client resumes from its last event, on this pod or another.
    session.close(full ? "replay-queue-full" : "replay-failed", jitter(config.SHED_RETRY_MS));
  } finally {
    if (catchUp) {
      catchUp.setAttributes({
        "sse.catch_up": t.catchUp,
        "sse.replayed_events": t.replayed,
      });
      if (session.closeReason !== undefined)
        catchUp.setAttribute("sse.close_reason", session.closeReason);
      catchUp.end();
    }
  }
  return true;
}

/** What the route keeps with an open session (`session.meta`) for its clean-up. */
interface Tracked {
  feed: Feed;
  rs: RequestSpan;
  /** The connection slot; released by the clean-up. */
  ticket: AdmissionTicket;
  /** When the token ends the stream (ms since the epoch), if it expires. */
  expiresAt: number | undefined;
  /** Read at the close: bytes written for this stream, HTTP headers and chunk framing included. */
  socket: Socket | undefined;
  /** The socket's bytes written before the stream (a kept-alive socket's earlier answers). */
  bytesBefore: number;
  /** How the session caught up: nothing to catch up, from the window, or by replay. */
  catchUp: "none" | "window" | "replay";
  replayed: number;
}

/** Close reasons that mean the gateway cut the session short: `error.type` on its span. */
const ERROR_CLOSES: ReadonlySet<CloseReason> = new Set<CloseReason>([
  "slow",
  "feed-ended",
  "replay-failed",
  "replay-queue-full",
  "api-queue-full",
]);

/** The clean-up of an open session, however it closed. Runs once per tracked session. */
function untrack(session: Session, reason: CloseReason, deps: AppDeps): void {
  const t = session.meta as Tracked | undefined;
  if (!t) return; // closed before its stream started; `handle` cleaned up
  session.meta = undefined;
  t.ticket.release();
  if (t.expiresAt !== undefined) deps.expiry.remove(session, t.expiresAt);
  deps.sessions.remove(session);
  deps.nats?.feeds.leave(t.feed, session);
  deps.metrics.sessions.dec();
  deps.metrics.sessionsClosed.inc({ reason });
  const bytes = Math.max(0, (t.socket?.bytesWritten ?? t.bytesBefore) - t.bytesBefore);
  if (deps.log.isLevelEnabled("debug"))
    context.with(t.rs.context, () =>
      deps.log.debug({ reason, events: session.events, bytes }, "session closed"),
    );
  if (!t.rs.recording) return t.rs.end();
  const attrs: Attributes = {
    "sse.close_reason": reason,
    "sse.events": session.events,
    "sse.bytes_sent": bytes,
    "sse.catch_up": t.catchUp,
    "sse.replayed_events": t.replayed,
  };
  if (session.lastSeq !== undefined) attrs["sse.last_seq"] = session.lastSeq;
  if (ERROR_CLOSES.has(reason)) attrs["error.type"] = reason;
  t.rs.end(attrs);
}

/** A catch-up step: an event on the session's span, and the session's summary. */
function recordStep(t: Tracked, step: CatchUpStep): void {
  switch (step.type) {
    case "window":
      if (t.catchUp === "none") t.catchUp = "window";
      break;
    case "replay-start":
      t.catchUp = "replay";
      break;
    case "replay-end":
      t.replayed += step.delivered;
      break;
    default:
      break;
  }
  if (!t.rs.recording) return;
  const { type, ...fields } = step;
  const attrs: Attributes = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) attrs[`sse.${snake(k)}`] = v;
  t.rs.span.addEvent(`sse.${type.replace("-", ".")}`, attrs);
}

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The stream's attributes (messaging conventions), set when the 200 is sent. */
function sessionAttributes(
  filters: readonly string[],
  stream: string,
  start: StartPosition,
): Attributes {
  const attrs: Attributes = {
    "http.response.status_code": 200,
    "messaging.system": "nats",
    "messaging.operation.type": "receive",
    "messaging.destination.name": filters.length === 1 ? (filters[0] as string) : [...filters],
    "sse.stream": stream,
    "sse.start": start.kind,
    ...cursorAttributes(start),
  };
  const templates = filters.filter((f) => f.includes("*") || f.includes(">"));
  if (templates.length > 0)
    attrs["messaging.destination.template"] =
      templates.length === 1 ? (templates[0] as string) : templates;
  return attrs;
}

/**
 * What MAX_CONNECTIONS_PER_CLIENT counts a request against (CLIENT_LIMIT_BY), or undefined
 * when no per-client bound applies. `auto`: the token's `sub` when authorization is on; else
 * the client address when a trusted proxy vouched for it or when it is a public address (a
 * directly exposed gateway). Behind an ingress every connection's peer is an ingress pod:
 * counting by that would cap the whole pod.
 */
function limitKey(
  mode: Config["CLIENT_LIMIT_BY"],
  authOn: boolean,
  client: ClientAddress,
  token: VerifiedToken | undefined,
): string | undefined {
  if (mode === "none") return undefined;
  if (mode === "address") return client.address;
  if ((mode === "token" || authOn) && token?.subject !== undefined) return `sub:${token.subject}`;
  if (mode === "token") return client.viaProxy ? client.address : undefined;
  // A public peer is a client itself (a gateway exposed directly); a private one is most
  // likely an ingress or load balancer, and keying on it would cap everyone behind it.
  return client.viaProxy || isPublicAddress(client.address) ? client.address : undefined;
}

/** `http.route`: the path template the request matched. */
function routeOf(req: IncomingMessage): string {
  const url = req.url ?? "";
  return url.length > 8 && url[7] === "/" && url[8] !== "?" ? "/events/{subject}" : "/events";
}

/** The request URL as logs may show it: token-carrying query values redacted. */
function redactUrl(url: string | undefined): string | undefined {
  const q = url?.indexOf("?") ?? -1;
  return url === undefined || q < 0 ? url : `${url.slice(0, q)}?${redactQuery(url.slice(q + 1))}`;
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
  deps: AppDeps,
  err: unknown,
  filters: readonly string[],
  reject: (status: number, code: ErrorCode, message: string) => void,
  turnAway: (reason: ShedReason) => void,
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
  if (err instanceof ApiQueueFullError) return turnAway("jetstream-busy");
  deps.log.warn({ err }, "stream lookup failed; shedding the request");
  turnAway("nats-unavailable");
}
