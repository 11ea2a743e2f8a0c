/**
 * Response headers of every event stream. `no-transform` and `X-Accel-Buffering: no` stop
 * proxies (nginx, CDNs) from buffering or compressing the stream, which would delay events.
 */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-cache, no-transform",
  "X-Accel-Buffering": "no",
};
