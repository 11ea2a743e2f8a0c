import type { ServerResponse } from "node:http";
import type { Context } from "koa";

/**
 * Every `error` code of JSON error bodies, with the status it is answered with. Each is a row
 * of the README's error table (a unit test checks it).
 */
export const ERROR_STATUS = {
  malformed_subject: 400,
  subject_forbidden: 403,
  no_subject: 400,
  too_many_subjects: 400,
  overlapping_subjects: 400,
  subjects_span_streams: 400,
  malformed_cursor: 400,
  invalid_start: 400,
  stream_not_found: 404,
  malformed_request: 400,
  too_many_parameters: 400,
  headers_too_large: 431,
  query_too_long: 414,
  request_timeout: 408,
  expectation_failed: 417,
  not_found: 404,
  method_not_allowed: 405,
  full: 503,
  client_limit: 429,
  draining: 503,
  nats_unavailable: 503,
  feed_limit: 503,
  feed_rate: 503,
  jetstream_busy: 503,
  missing_token: 401,
  invalid_token: 401,
  token_expired: 401,
  subject_not_granted: 403,
  subject_not_allowed: 403,
  auth_unavailable: 503,
  internal: 500,
} as const satisfies Record<string, number>;

/** The `error` codes of JSON error bodies. */
export type ErrorCode = keyof typeof ERROR_STATUS;

/** Answers with a status and a JSON body `{ error, message }`; only before headers are sent. */
export function sendError(ctx: Context, status: number, error: ErrorCode, message: string): void {
  ctx.status = status;
  ctx.set("Cache-Control", "no-store");
  ctx.body = { error, message };
}

/** The raw HTTP/1.1 answer for errors Node's parser raises before Koa sees the request. */
export function rawErrorResponse(
  status: number,
  reason: string,
  error: ErrorCode,
  message: string,
): string {
  const body = JSON.stringify({ error, message });
  return (
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

/** The same `{ error, message }` answer on a bare Node response (the streaming route). */
export function writeError(
  res: ServerResponse,
  status: number,
  error: ErrorCode,
  message: string,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify({ error, message });
  res.writeHead(status, {
    ...headers,
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": String(Buffer.byteLength(body)),
    "Cache-Control": "no-store",
  });
  res.end(body);
}
