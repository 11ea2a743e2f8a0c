/**
 * The edges of HTTP: query strings at and over their bounds, requests Node answers by itself
 * (no Host, Expect, CONNECT, too slow), absolute-form targets, against a real nats-server and the
 * real gateway over real HTTP (raw sockets where fetch would not send the request). Every
 * answer before a stream starts is a status with a JSON body `{ error, message }`.
 */
import net from "node:net";
import { startNats, type NatsHandle } from "../support/nats";
import { startTestGateway, type TestGateway } from "../support/inProcessGateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { parseRaw, rawExchange } from "../support/rawHttp";
import { rawGet } from "../support/sse-client";
import {
  errorBody,
  metricValue,
  openRecorder,
  sleep,
  Tracker,
  unique,
  waitForId,
} from "./contract-helpers";

let nats: NatsHandle;
let js: TestJetStream;
let gw: TestGateway;
let good: string;
const tracker = new Tracker();

beforeAll(async () => {
  nats = await startNats();
  js = await connectJetStream(nats.url);
  gw = await startTestGateway(nats.url, {
    MAX_SUBJECTS: "4",
    HTTP_MAX_QUERY_PARAMS: "8",
    HTTP_MAX_QUERY_BYTES: "1024",
    HTTP_MAX_HEADER_BYTES: "65536",
    HTTP_HEADERS_TIMEOUT_MS: "400",
    HTTP_REQUEST_TIMEOUT_MS: "800",
  });
  const { stream, prefix } = unique("edge");
  await js.addStream(stream, [`${prefix}.>`]);
  good = `${prefix}.ok`;
});

afterEach(() => tracker.closeAll());

afterAll(async () => {
  await tracker.closeAll();
  await gw?.close();
  await js?.close();
  await nats?.close();
});

/** GET `path`, expecting a JSON error with this status and code. */
async function expectError(path: string, status: number, code: string): Promise<string> {
  const res = await rawGet(`${gw.url}${path}`);
  expect({ path: path.slice(0, 80), status: res.status }).toEqual({
    path: path.slice(0, 80),
    status,
  });
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  const body = errorBody(res.body);
  expect(body.error).toBe(code);
  return body.message;
}

describe("query strings", () => {
  it("query - a query string above HTTP_MAX_QUERY_BYTES is refused with 414 query_too_long", async () => {
    const message = await expectError(
      `/events/${good}?pad=${"x".repeat(1100)}`,
      414,
      "query_too_long",
    );
    expect(message).toContain("1024");
  });

  it("query - more than HTTP_MAX_QUERY_PARAMS parameters are refused with 400 too_many_parameters", async () => {
    const query = Array.from({ length: 9 }, (_, i) => `p${i}=1`).join("&");
    await expectError(`/events/${good}?${query}`, 400, "too_many_parameters");
  });

  it("query - one name repeated thousands of times is refused by the parameter bound, and counted", async () => {
    // 60 KB of `a&a&a…`: the length bound is out of the way here (the request goes raw, as a
    // browser would never send it), so the parameter bound must stop it.
    const repeated = Array.from({ length: 30_000 }, () => "a").join("&");
    const big = await startTestGateway(nats.url, {
      HTTP_MAX_QUERY_BYTES: "131072",
      HTTP_MAX_HEADER_BYTES: "262144",
    });
    try {
      const res = parseRaw(
        await rawExchange(
          big.url,
          `GET /events/${good}?${repeated} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
          { timeoutMs: 30_000 },
        ),
      );
      expect(res.status).toBe(400);
      expect(errorBody(res.body).error).toBe("too_many_parameters");
      expect(
        metricValue(await big.metrics(), "sse_requests_rejected_total", {
          code: "too_many_parameters",
        }),
      ).toBe(1);
    } finally {
      await big.close();
    }
  });

  it("query - a query within both bounds is served", async () => {
    const query = [`subject=${good}`, "a=1", "b=2", "c=3", "d=4", "e=5", "f=6", "g=7"].join("&");
    const rec = await openRecorder(tracker, `${gw.url}/events?${query}`);
    const seq = await js.publish(good, "within bounds");
    await waitForId(rec, seq);
  });
});

/** Sends raw bytes, expecting one JSON error answer with this status and code. */
async function expectRawError(request: string, status: number, code: string): Promise<void> {
  const res = parseRaw(await rawExchange(gw.url, request, { untilAnswer: true }));
  expect({ request: request.split("\r\n")[0], status: res.status }).toEqual({
    request: request.split("\r\n")[0],
    status,
  });
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  expect(errorBody(res.body).error).toBe(code);
}

/**
 * Reads a raw socket until `done(text)` holds or the server closes; bounded. `latin1` keeps
 * one character per byte, so offsets in the text are byte offsets (chunk sizes count bytes).
 */
function rawStream(
  request: string,
  done: (text: string) => boolean,
  timeoutMs = 10_000,
  encoding: "utf8" | "latin1" = "utf8",
): Promise<{ text: string; closed: boolean }> {
  const { hostname, port } = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`raw stream: timed out after ${timeoutMs} ms: ${JSON.stringify(text)}`));
    }, timeoutMs);
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed });
    };
    socket.on("data", (c: Buffer) => {
      text += c.toString(encoding);
      if (done(text)) finish(false);
    });
    socket.on("error", () => undefined);
    socket.on("close", () => finish(true));
    socket.write(request);
  });
}

describe("what Node answers by itself is JSON too", () => {
  it("protocol - an HTTP/1.1 request without Host gets 400 JSON malformed_request", async () => {
    await expectRawError(`GET /events/${good} HTTP/1.1\r\n\r\n`, 400, "malformed_request");
  });

  it("protocol - an Expect: other than 100-continue gets 417 JSON expectation_failed", async () => {
    await expectRawError(
      `GET /events/${good} HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n`,
      417,
      "expectation_failed",
    );
  });

  it("protocol - CONNECT gets 405 JSON method_not_allowed", async () => {
    await expectRawError(
      "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
      405,
      "method_not_allowed",
    );
  });

  it("protocol - a socket that does not finish its headers in time gets 408 JSON request_timeout and is closed; one that sent nothing is closed unanswered", async () => {
    const before = metricValue(await gw.metrics(), "sse_http_errors_total", {
      code: "request_timeout",
    });
    // Half a request line; then headers that never end.
    for (const partial of ["GET /eve", `GET /events/${good} HTTP/1.1\r\nHost: x\r\n`]) {
      const res = parseRaw(await rawExchange(gw.url, partial, { timeoutMs: 10_000 }));
      expect(res.status).toBe(408);
      expect(res.headers.get("connection")).toBe("close");
      expect(errorBody(res.body).error).toBe("request_timeout");
    }
    // Nothing at all: closed unanswered (EventSource retries a network error, never a 408).
    expect(await rawExchange(gw.url, "", { timeoutMs: 10_000 })).toBe("");
    expect(
      metricValue(await gw.metrics(), "sse_http_errors_total", { code: "request_timeout" }),
    ).toBeGreaterThanOrEqual(before + 3);
  });

  it("protocol - a stream outlives HTTP_REQUEST_TIMEOUT_MS: it bounds the request, not the response", async () => {
    const rec = await openRecorder(tracker, `${gw.url}/events/${good}`);
    await sleep(2_000); // pacing: over twice the request timeout (800 ms) and its check interval
    const seq = await js.publish(good, "still streaming");
    await waitForId(rec, seq);
    expect([rec.opens, rec.errors]).toEqual([1, 0]);
  });

  it("protocol - a stream whose request body never ends is cut, never given a second status line", async () => {
    const { text, closed } = await rawStream(
      `GET /events/${good} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n` +
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
      () => false,
    );
    expect(closed).toBe(true);
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text.match(/HTTP\/1\.1 /g)).toHaveLength(1);
  });
});

describe("absolute-form request targets (RFC 9112 §3.2.2)", () => {
  it("protocol - GET http://host/events/<subject> is served like /events/<subject>", async () => {
    const seq = await js.publish(good, "absolute");
    // A cursor just before it, so the stream delivers it whenever it starts.
    const { text } = await rawStream(
      `GET http://gateway.example/events/${good}?lastEventId=${seq - 1} HTTP/1.1\r\n` +
        "Host: gateway.example\r\nAccept: text/event-stream\r\n\r\n",
      (t) => t.includes("data: absolute\n\n"),
    );
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toMatch(/\r\ncontent-type: text\/event-stream/i);
    expect(text).toContain(`id: ${seq}\ndata: absolute\n\n`);
  });

  it("protocol - absolute-form targets reach every route: 404 and 405 stay JSON", async () => {
    await expectRawError(
      "GET http://gateway.example/nope HTTP/1.1\r\nHost: gateway.example\r\n\r\n",
      404,
      "not_found",
    );
    await expectRawError(
      `POST http://gateway.example/events/${good} HTTP/1.1\r\nHost: gateway.example\r\n` +
        "Content-Length: 0\r\n\r\n",
      405,
      "method_not_allowed",
    );
    await expectRawError(
      "GET ftp://gateway.example/events HTTP/1.1\r\nHost: gateway.example\r\n\r\n",
      400,
      "malformed_request",
    );
  });
});

/**
 * Splits an HTTP/1.1 chunked body (latin1 text, so offsets are bytes) into its chunks; throws
 * on anything that is not chunk framing. `rest` is an unfinished chunk at the end.
 */
function chunks(body: string): { chunks: string[]; rest: string } {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    const eol = body.indexOf("\r\n", i);
    if (eol < 0) return { chunks: out, rest: body.slice(i) };
    const line = body.slice(i, eol);
    if (!/^[0-9a-f]+$/.test(line))
      throw new Error(`not a chunk size line: ${JSON.stringify(line)}`);
    const size = Number.parseInt(line, 16);
    if (body.length < eol + 2 + size + 2) return { chunks: out, rest: body.slice(i) };
    if (body.slice(eol + 2 + size, eol + 4 + size) !== "\r\n")
      throw new Error(`chunk of ${size} bytes not followed by CRLF`);
    out.push(body.slice(eol + 2, eol + 2 + size));
    i = eol + 4 + size;
  }
}

/** The bytes (latin1) a raw socket read until `done(text)` held; bounded. */
async function rawBytes(request: string, done: (text: string) => boolean): Promise<string> {
  return (await rawStream(request, done, 10_000, "latin1")).text;
}

describe("the stream's framing on the wire (the gateway frames chunks itself)", () => {
  const bodyOf = (text: string) => text.slice(text.indexOf("\r\n\r\n") + 4);

  it("protocol - HTTP/1.1: every byte after the headers is a well-formed chunk, events whole and in order", async () => {
    const { prefix, stream } = unique("wire");
    await js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.a`;
    const payloads = ["one", "twö", "x".repeat(5_000), "four"];
    let published = false;
    const text = await rawBytes(
      `GET /events/${subject} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`,
      (t) => {
        if (!published && t.includes("retry:")) {
          published = true;
          // One alone, then three at once (one batch for the feed), while the stream is live.
          void js
            .publish(subject, payloads[0] as string)
            .then(() => Promise.all(payloads.slice(1).map((p) => js.publish(subject, p))));
        }
        return bodyOf(t).includes("data: four\n\n") || bodyOf(t).includes("data: four\r");
      },
    );
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text.slice(0, text.indexOf("\r\n\r\n"))).toMatch(/\r\ntransfer-encoding: chunked/i);
    const { chunks: parts, rest } = chunks(bodyOf(text));
    expect(rest).toBe("");
    const sse = Buffer.from(parts.join(""), "latin1").toString("utf8");
    expect(sse.startsWith("retry: ")).toBe(true);
    const datas = [...sse.matchAll(/^data: (.*)$/gm)].map((m) => m[1]);
    expect(datas).toEqual(payloads);
    const ids = [...sse.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(payloads.length);
  });

  it("protocol - HTTP/1.0: no chunking, the body is the event stream itself, delimited by the close", async () => {
    const seq = await js.publish(good, "for a 1.0 client");
    const text = await rawBytes(
      `GET /events/${good}?lastEventId=${seq - 1} HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n`,
      (t) => t.includes("data: for a 1.0 client\n\n"),
    );
    const head = text.slice(0, text.indexOf("\r\n\r\n"));
    expect(head).toMatch(/^HTTP\/1\.1 200 /);
    expect(head).not.toMatch(/transfer-encoding/i);
    expect(bodyOf(text)).toMatch(/^retry: \d+\n\nid: \d+\ndata: for a 1\.0 client\n\n$/);
  });

  it("protocol - HEAD on a stream is refused with 405 and no body", async () => {
    const res = parseRaw(
      await rawExchange(
        gw.url,
        `HEAD /events/${good} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
        { untilAnswer: true },
      ),
    );
    expect(res.status).toBe(405);
    expect(res.body).toBe(""); // a HEAD answer never has a body, the stream's neither
  });
});
