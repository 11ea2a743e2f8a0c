import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { gunzipSync } from "node:zlib";
import { decodeTraceRequest, type DecodedSpan } from "./otlpProto";

/**
 * How the receiver answers trace exports: `"ok"` decodes and stores them (200), `"hang"` reads
 * the request and never answers (a collector that stopped responding), `"fail"` answers 503 (a
 * collector that is up but refusing, which OTLP exporters treat as retryable).
 */
export type OtlpReceiverMode = "ok" | "hang" | "fail";

/** A running test OTLP/HTTP trace receiver; see {@link startOtlpReceiver}. */
export interface OtlpReceiver {
  /** Base URL, e.g. `http://127.0.0.1:41234` (for `OTEL_EXPORTER_OTLP_ENDPOINT`). */
  readonly url: string;
  /** The traces endpoint, `${url}/v1/traces` (for `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). */
  readonly tracesUrl: string;
  /** Every span accepted so far (mode "ok"), in arrival order; the live array. */
  readonly spans: DecodedSpan[];
  /** Requests received, whatever the answer (including hung and refused ones). */
  readonly requests: number;
  /** One line per request answered 4xx (bad path, method, media type, encoding or body). */
  readonly errors: string[];
  /**
   * Resolves with a copy of all spans once `predicate` holds for them (checked now and after
   * each accepted export); rejects after `timeoutMs`, listing the spans that did arrive.
   */
  waitFor(
    predicate: (spans: readonly DecodedSpan[]) => boolean,
    timeoutMs?: number,
  ): Promise<DecodedSpan[]>;
  /** Changes how requests arriving from now on are answered. */
  setMode(mode: OtlpReceiverMode): void;
  /** Stops listening and destroys every connection, hung requests included. Idempotent. */
  close(): Promise<void>;
}

const PROTOBUF = "application/x-protobuf";

/** A request refused with a 4xx status, recorded in {@link OtlpReceiver.errors}. */
class Refusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Starts an OTLP/HTTP (protobuf) trace receiver on 127.0.0.1 with an ephemeral port, for tests
 * that run a process exporting spans (e.g. with `@opentelemetry/exporter-trace-otlp-proto`) and
 * check what it sent. Accepts `POST /v1/traces` with `Content-Type: application/x-protobuf`,
 * optionally `Content-Encoding: gzip`, and answers 200 with an empty ExportTraceServiceResponse.
 */
export async function startOtlpReceiver(
  opts: { mode?: OtlpReceiverMode } = {},
): Promise<OtlpReceiver> {
  let mode = opts.mode ?? "ok";
  let requests = 0;
  const spans: DecodedSpan[] = [];
  const errors: string[] = [];
  const sockets = new Set<Socket>();
  const waiters = new Set<Waiter>();

  const server = http.createServer((req, res) => {
    requests++;
    const modeNow = mode; // the mode when the request arrived decides its fate
    void readBody(req).then((body) => {
      try {
        checkRoute(req);
        if (modeNow === "hang") return; // never answer: close() destroys the socket
        if (modeNow === "fail") return answer(res, 503, "text/plain", "receiver in fail mode");
        spans.push(...decodeTraceRequest(decodeBody(req, body)));
        answer(res, 200, PROTOBUF); // an empty ExportTraceServiceResponse is zero bytes
        for (const w of waiters) w.check();
      } catch (err) {
        const status = err instanceof Refusal ? err.status : 400;
        const message = err instanceof Error ? err.message : String(err);
        errors.push(`${req.method} ${req.url}: ${status} ${message}`);
        answer(res, status, "text/plain", message);
      }
    });
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  let closing: Promise<void> | undefined;
  const summary = () =>
    `${spans.length} span(s) in ${requests} request(s): [${spans.map((s) => s.name).join(", ")}]` +
    (errors.length ? `; errors: ${errors.join(" | ")}` : "");

  return {
    url,
    tracesUrl: `${url}/v1/traces`,
    spans,
    errors,
    get requests() {
      return requests;
    },
    waitFor: (predicate, timeoutMs = 10_000) =>
      new Promise((resolve, reject) => {
        const waiter: Waiter = {
          check() {
            try {
              if (predicate(spans)) settle(() => resolve([...spans]));
            } catch (err) {
              settle(() => reject(err));
            }
          },
          abort: (why) => settle(() => reject(new Error(`waitFor: ${why}; ${summary()}`))),
        };
        const timer = setTimeout(() => waiter.abort(`no match within ${timeoutMs} ms`), timeoutMs);
        const settle = (then: () => void) => {
          clearTimeout(timer);
          waiters.delete(waiter);
          then();
        };
        waiters.add(waiter);
        waiter.check();
      }),
    setMode(next) {
      mode = next;
    },
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        for (const w of waiters) w.abort("receiver closed");
        server.close((err) => (err ? reject(err) : resolve()));
        // server.close() waits for open connections, and a hung request's connection never ends.
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}

interface Waiter {
  check(): void;
  abort(why: string): void;
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    // An aborted upload has nobody left to answer; the socket's close cleans up.
    req.on("error", () => undefined);
  });
}

function checkRoute(req: http.IncomingMessage): void {
  if (new URL(req.url ?? "/", "http://x").pathname !== "/v1/traces")
    throw new Refusal(404, "only /v1/traces is served");
  if (req.method !== "POST") throw new Refusal(405, "only POST is allowed");
}

/** The request's protobuf bytes: media type checked, gzip undone. */
function decodeBody(req: http.IncomingMessage, body: Buffer): Buffer {
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== PROTOBUF)
    throw new Refusal(415, `content-type ${type || "(none)"} is not ${PROTOBUF}`);
  const encoding = (req.headers["content-encoding"] ?? "identity").trim().toLowerCase();
  if (encoding === "gzip") return gunzipSync(body);
  if (encoding !== "identity")
    throw new Refusal(415, `content-encoding ${encoding} is not supported`);
  return body;
}

function answer(res: http.ServerResponse, status: number, type: string, body = ""): void {
  res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body) });
  res.end(body);
}
