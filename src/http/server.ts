import {
  createServer,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Metrics } from "../telemetry/metrics";
import { rawErrorResponse, writeError, type ErrorCode } from "./errors";

/** The timeouts and sizes of an HTTP server; see the README's settings table. */
export interface HttpServerOptions {
  /** Request line and headers, in bytes (HTTP_MAX_HEADER_BYTES, default 16384): else 431. */
  maxHeaderBytes: number;
  /** Time to receive the request line and headers, in ms (HTTP_HEADERS_TIMEOUT_MS, 10000): else 408. */
  headersTimeoutMs: number;
  /**
   * Time to receive the whole request, in ms (HTTP_REQUEST_TIMEOUT_MS, default 30000): else 408.
   * Only the request: a stream's response may stay open for hours.
   */
  requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open, in ms (HTTP_KEEP_ALIVE_TIMEOUT_MS, 5000). */
  keepAliveTimeoutMs: number;
}

type ClientErrorAnswer = [status: number, reason: string, code: ErrorCode, message: string];

// What Node's parser raises before any route sees the request, answered in JSON.
const CLIENT_ERRORS: Record<string, ClientErrorAnswer> = {
  HPE_HEADER_OVERFLOW: [
    431,
    "Request Header Fields Too Large",
    "headers_too_large",
    "request headers are too large",
  ],
  ERR_HTTP_REQUEST_TIMEOUT: [
    408,
    "Request Timeout",
    "request_timeout",
    "the request did not arrive in time",
  ],
};
const MALFORMED: ClientErrorAnswer = [
  400,
  "Bad Request",
  "malformed_request",
  "malformed HTTP request",
];

/**
 * A `node:http` server whose every answer is JSON `{ error, message }`, including those Node
 * gives by itself before a route sees the request (a parse error, headers too large, a
 * headers or request timeout, an `Expect:` it cannot meet, a `CONNECT`, a missing `Host`),
 * and which accepts absolute-form request targets (`GET http://host/path`, RFC 9112 §3.2.2).
 *
 * Node checks the timeouts of unfinished requests on a timer (`connectionsCheckingInterval`,
 * 30 s by default); it runs here at a quarter of the headers timeout, at most every second,
 * so a socket that never finishes its headers is reaped close to HTTP_HEADERS_TIMEOUT_MS. The
 * check walks only connections with an unfinished request, never the open streams.
 */
export function createHttpServer(
  opts: HttpServerOptions,
  handler: RequestListener,
  metrics: Metrics,
): Server {
  const refuse = (res: ServerResponse, status: number, code: ErrorCode, message: string) => {
    metrics.httpErrors.inc({ code });
    res.shouldKeepAlive = false;
    writeError(res, status, code, message);
  };
  const server = createServer(
    {
      maxHeaderSize: opts.maxHeaderBytes,
      headersTimeout: opts.headersTimeoutMs,
      requestTimeout: opts.requestTimeoutMs,
      keepAliveTimeout: opts.keepAliveTimeoutMs,
      connectionsCheckingInterval: Math.max(
        25,
        Math.min(1_000, Math.floor(opts.headersTimeoutMs / 4)),
      ),
      // Node answers a missing Host with an empty 400; ours is JSON (below).
      requireHostHeader: false,
    },
    (req: IncomingMessage, res: ServerResponse) => {
      // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host.
      if (req.httpVersion === "1.1" && req.headers.host === undefined)
        return refuse(res, 400, "malformed_request", "an HTTP/1.1 request needs a Host header");
      const url = req.url ?? "/";
      if (url[0] !== "/" && url !== "*") {
        const target = originForm(url);
        if (!target)
          return refuse(
            res,
            400,
            "malformed_request",
            "the request target must be a path or an absolute http(s) URL",
          );
        // RFC 9112 §3.2.2: the target's authority replaces the Host header.
        req.url = target.path;
        req.headers.host = target.host;
      }
      handler(req, res);
    },
  );
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    // A response already under way on this socket (a stream whose request body never ended,
    // say) must not get a second status line in the middle of it: end the connection.
    const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse })._httpMessage;
    if (!socket.writable || inFlight?.headersSent) return socket.destroy();
    // A socket that has not sent one byte when the headers timeout fires is closed unanswered,
    // as nginx and Go's net/http do. In a reconnect storm that overflows the accept queue the
    // kernel may complete a connection from a bare ACK while the client's request waits for its
    // own retransmission, backed off to seconds: a 408 would make EventSource give up for good,
    // a network error makes it retry (`bench capacity` with 19,000 opening at once: ~1,000 408s).
    if (err.code === "ERR_HTTP_REQUEST_TIMEOUT" && (socket as Socket).bytesRead === 0) {
      metrics.httpErrors.inc({ code: "request_timeout" });
      return socket.destroy();
    }
    const [status, reason, code, message] = CLIENT_ERRORS[err.code ?? ""] ?? MALFORMED;
    metrics.httpErrors.inc({ code });
    socket.end(rawErrorResponse(status, reason, code, message));
  });
  // Node answers an `Expect:` other than 100-continue with an empty 417.
  server.on("checkExpectation", (req: IncomingMessage, res: ServerResponse) =>
    refuse(
      res,
      417,
      "expectation_failed",
      `Expect: ${String(req.headers.expect).slice(0, 64)} cannot be met; only 100-continue is supported`,
    ),
  );
  // Without a listener Node drops a CONNECT without a word.
  server.on("connect", (_req: IncomingMessage, socket: Duplex) => {
    metrics.httpErrors.inc({ code: "method_not_allowed" });
    socket.end(
      rawErrorResponse(
        405,
        "Method Not Allowed",
        "method_not_allowed",
        "CONNECT is not supported: this is not a proxy",
      ),
    );
  });
  return server;
}

/**
 * The path and query of an absolute-form request target (`http://host:port/path?query`), and
 * its authority; undefined when the target is neither that nor origin-form.
 */
export function originForm(target: string): { path: string; host: string } | undefined {
  const m = /^https?:\/\/([^/?#\s]+)([^#\s]*)/i.exec(target);
  if (!m) return undefined;
  const rest = m[2] ?? "";
  const host = m[1] as string;
  if (host.includes("@")) return undefined; // userinfo is not allowed in http(s) URIs (RFC 9110 §4.2.4)
  return { path: rest === "" ? "/" : rest[0] === "?" ? `/${rest}` : rest, host };
}
