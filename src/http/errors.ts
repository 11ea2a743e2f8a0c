import type { ServerResponse } from "node:http";
import type { Context } from "koa";

/** The `error` codes of JSON error bodies; each is listed in the README. */
export type ErrorCode =
  | "malformed_subject"
  | "subject_forbidden"
  | "no_subject"
  | "too_many_subjects"
  | "overlapping_subjects"
  | "subjects_span_streams"
  | "malformed_cursor"
  | "invalid_start"
  | "stream_not_found"
  | "malformed_request"
  | "headers_too_large"
  | "not_found"
  | "method_not_allowed"
  | "full"
  | "client_limit"
  | "draining"
  | "nats_unavailable"
  | "internal";

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
