import type { IncomingMessage, ServerResponse } from "node:http";
import { encodeComment, encodeRetry } from "../sse/encoder";
import { jitter } from "../sse/sessionRegistry";
import type { AppDeps } from "./deps";
import { writeError, type ErrorCode } from "./errors";
import { header } from "./request";
import { SSE_HEADERS } from "./sseHeaders";

/** Why a stream request was turned away before it started. */
export type ShedReason =
  | "full"
  | "client-limit"
  | "draining"
  | "nats-unavailable"
  | "feed-limit"
  | "feed-rate"
  | "jetstream-busy"
  | "auth-unavailable";

const ANSWERS: Record<ShedReason, [number, ErrorCode, string]> = {
  full: [503, "full", "this gateway instance is at its connection limit; retry"],
  "client-limit": [429, "client_limit", "too many connections from this client address"],
  draining: [503, "draining", "this gateway instance is shutting down; retry"],
  "nats-unavailable": [503, "nats_unavailable", "NATS is not reachable from this instance; retry"],
  "feed-limit": [
    503,
    "feed_limit",
    "this instance runs as many feeds as it may (MAX_FEEDS); retry",
  ],
  "feed-rate": [503, "feed_rate", "new subject sets arrive too fast (FEED_CREATE_RATE); retry"],
  "jetstream-busy": [
    503,
    "jetstream_busy",
    "too many JetStream API calls are waiting on this instance (JETSTREAM_API_MAX_QUEUED); retry",
  ],
  "auth-unavailable": [
    503,
    "auth_unavailable",
    "the keys that check tokens cannot be fetched right now (AUTH_JWKS_URL); retry",
  ],
};

/**
 * Turns a stream request away so that the client comes back by itself (invariant 7).
 * `EventSource` gives up for good on any non-200 answer, so a client that accepts
 * `text/event-stream` gets a 200 stream that carries only a jittered `retry:` and ends; the
 * browser reconnects later (by then, readiness has steered the Service to other pods).
 * Other clients get the status and a JSON body with `Retry-After`.
 */
export function shed(
  req: IncomingMessage,
  res: ServerResponse,
  deps: AppDeps,
  reason: ShedReason,
  headers: Record<string, string>,
): ShedAnswer {
  deps.metrics.shed.inc({ reason });
  const retryMs = jitter(deps.config.SHED_RETRY_MS);
  const [status, code, message] = ANSWERS[reason];
  if ((header(req, "accept") ?? "").includes("text/event-stream")) {
    res.writeHead(200, { ...headers, ...SSE_HEADERS });
    res.end(Buffer.concat([encodeRetry(retryMs), encodeComment(reason)]));
    return { status: 200, code };
  }
  writeError(res, status, code, message, {
    ...headers,
    "Retry-After": String(Math.max(1, Math.ceil(retryMs / 1000))),
  });
  return { status, code };
}

/** What a shed request was answered: the status sent, and the error code of its reason. */
export interface ShedAnswer {
  status: number;
  code: ErrorCode;
}
