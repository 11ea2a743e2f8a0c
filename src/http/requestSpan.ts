import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import {
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  propagation,
  trace,
  type Attributes,
  type Context,
  type Span,
  type TextMapGetter,
} from "@opentelemetry/api";
import { tracer, tracingActive } from "../telemetry/tracing";

/** Reads W3C `traceparent`, `tracestate` and `baggage` (or whatever OTEL_PROPAGATORS names). */
const HEADERS: TextMapGetter<IncomingHttpHeaders> = {
  keys: (h) => Object.keys(h),
  get: (h, key) => h[key.toLowerCase()],
};

/** Query parameters whose values never reach a span or a log line (bearer tokens). */
const SECRET_PARAMS = new Set(["access_token", "token", "jwt", "authorization"]);

/** Longest attribute taken from the request (URL parts, user agent), in characters. */
const MAX_ATTRIBUTE_CHARS = 1_024;

/**
 * The SERVER span of one `/events` request, following the OpenTelemetry HTTP conventions. Its
 * parent is the request's propagated context (W3C `traceparent`), so a sampled browser trace
 * continues here and parent-based sampling is honoured. It ends with the answer: at once for a
 * rejected or shed request, or with the stream for a session (hours later).
 *
 * Whether a span records is the SDK's decision; when it does not (tracing off, or sampled out),
 * no attribute is even computed.
 */
export class RequestSpan {
  readonly span: Span;
  /** The request's context with this span active: run the request's work inside it. */
  readonly context: Context;
  private ended = false;

  /**
   * The request's span; with tracing off, one shared instance that records nothing (a stream
   * holds its span for hours: nothing per connection when there is nothing to record).
   */
  static start(req: IncomingMessage, route: string, client: string): RequestSpan {
    return tracingActive() ? new RequestSpan(req, route, client) : UNTRACED;
  }

  private constructor(req: IncomingMessage | undefined, route: string, client: string) {
    if (!req) {
      this.span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
      this.context = ROOT_CONTEXT;
      return;
    }
    const parent = propagation.extract(ROOT_CONTEXT, req.headers, HEADERS);
    const span = tracer().startSpan(`GET ${route}`, { kind: SpanKind.SERVER }, parent);
    this.span = span;
    // A context is a Map and three closures, held for as long as the stream is open: only
    // worth it when the span records (tracing off: the shared root context).
    this.context = span.isRecording() ? trace.setSpan(parent, span) : ROOT_CONTEXT;
    if (span.isRecording()) span.setAttributes(requestAttributes(req, route, client));
  }

  get recording(): boolean {
    return this.span.isRecording();
  }

  /** @internal the shared instance {@link start} returns while tracing is off. */
  static untraced(): RequestSpan {
    return new RequestSpan(undefined, "", "");
  }

  /** A 4xx (or 5xx) answer before any stream: the status, and the error code as `error.type`. */
  reject(status: number, code: string, message: string): void {
    if (this.ended) return;
    this.span.setAttributes({ "http.response.status_code": status, "error.type": code });
    if (status >= 500) this.span.setStatus({ code: SpanStatusCode.ERROR, message });
    this.end();
  }

  /**
   * Turned away with a retry hint: a 200 `retry:` stream for browsers (no error on the HTTP
   * level), or a 429/503 with a JSON body for other clients.
   */
  shed(reason: string, status: number, code: string): void {
    if (this.ended) return;
    this.span.setAttributes({ "http.response.status_code": status, "sse.shed_reason": reason });
    if (status >= 400) this.span.setAttribute("error.type", code);
    if (status >= 500) this.span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
    this.end();
  }

  /** Ends the span once; later calls do nothing. */
  end(attributes?: Attributes): void {
    if (this.ended) return;
    this.ended = true;
    if (attributes) this.span.setAttributes(attributes);
    this.span.end();
  }
}

const UNTRACED = RequestSpan.untraced();

function requestAttributes(req: IncomingMessage, route: string, client: string): Attributes {
  const raw = req.url ?? "";
  const q = raw.indexOf("?");
  const attrs: Attributes = {
    "http.request.method": "GET",
    "http.route": route,
    "url.scheme": "http",
    "url.path": clip(q < 0 ? raw : raw.slice(0, q)),
    "client.address": client,
    "network.peer.address": req.socket.remoteAddress ?? "",
    "network.protocol.version": req.httpVersion,
  };
  if (q >= 0) attrs["url.query"] = clip(redactQuery(raw.slice(q + 1)));
  if (req.socket.remotePort !== undefined) attrs["network.peer.port"] = req.socket.remotePort;
  const host = req.headers.host;
  if (host) {
    const colon = host.lastIndexOf(":");
    const bracket = host.lastIndexOf("]");
    if (colon > bracket) {
      attrs["server.address"] = clip(host.slice(0, colon));
      const port = Number(host.slice(colon + 1));
      if (Number.isInteger(port)) attrs["server.port"] = port;
    } else attrs["server.address"] = clip(host);
  }
  const ua = req.headers["user-agent"];
  if (ua) attrs["user_agent.original"] = clip(ua);
  return attrs;
}

/**
 * The query with the values of token-carrying parameters replaced by `REDACTED`, as the HTTP
 * conventions ask for `url.query`. Names are compared decoded and case-insensitively.
 */
export function redactQuery(query: string): string {
  if (query === "") return query;
  return query
    .split("&")
    .map((part) => {
      const eq = part.indexOf("=");
      if (eq < 0) return part;
      let name: string;
      try {
        name = decodeURIComponent(part.slice(0, eq).replace(/\+/g, " ")).toLowerCase();
      } catch {
        name = part.slice(0, eq).toLowerCase();
      }
      return SECRET_PARAMS.has(name) ? `${part.slice(0, eq)}=REDACTED` : part;
    })
    .join("&");
}

function clip(s: string): string {
  return s.length > MAX_ATTRIBUTE_CHARS ? s.slice(0, MAX_ATTRIBUTE_CHARS) : s;
}
