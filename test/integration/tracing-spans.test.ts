/**
 * Tracing with the real OpenTelemetry SDK in this process (an in-memory exporter behind the
 * gateway's own span queue), a real nats-server and real HTTP: request spans and their parents,
 * rejects and sheds, delivery spans linked to publishers, catch-up events, logs carrying ids.
 */
import { Writable } from "node:stream";
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  propagation,
  trace,
  type SpanContext,
} from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { Registry } from "prom-client";
import { createLogger } from "../../src/telemetry/logger";
import { createMetrics } from "../../src/telemetry/metrics";
import { startTracing, tracer, type Tracing } from "../../src/telemetry/tracing";
import { startTestGateway, type TestGateway } from "../support/inProcessGateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { startNats, type NatsHandle } from "../support/nats";
import { readSseFor, rawGet } from "../support/sse-client";
import { errorBody, metricValue, publishMany, sleep, unique, waitUntil } from "./contract-helpers";

let nats: NatsHandle;
let js: TestJetStream;
let gw: TestGateway;
let tracing: Tracing;
const exporter = new InMemorySpanExporter();
const tracingMetrics = createMetrics(new Registry(), false);
const logLines: string[] = [];

beforeAll(async () => {
  tracing = startTracing(
    { OTEL_BSP_SCHEDULE_DELAY: "20" },
    { exporter, queueSpans: 10_000, metrics: tracingMetrics },
  );
  nats = await startNats();
  js = await connectJetStream(nats.url);
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
      done();
    },
  });
  gw = await startTestGateway(
    nats.url,
    { LOG_LEVEL: "debug" },
    { log: createLogger("debug", sink) },
  );
});

afterAll(async () => {
  await gw?.close();
  await js?.close();
  await nats?.stop();
  await tracing?.shutdown(5_000);
});

const hex = (n: number) =>
  Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join("");

function spans(): ReadableSpan[] {
  return exporter.getFinishedSpans();
}

async function waitForSpans(
  what: string,
  match: (s: ReadableSpan) => boolean,
  count = 1,
): Promise<ReadableSpan[]> {
  await waitUntil(() => spans().filter(match).length >= count, what);
  return spans().filter(match);
}

const requestSpans = (traceId: string) => (s: ReadableSpan) =>
  s.kind === SpanKind.SERVER && s.spanContext().traceId === traceId;

async function stream(label: string): Promise<{ stream: string; subject: string }> {
  const u = unique(label);
  await js.addStream(u.stream, [`${u.prefix}.>`]);
  return { stream: u.stream, subject: `${u.prefix}.a` };
}

describe("request spans", () => {
  it("tracing - an incoming traceparent becomes the parent of the request's SERVER span", async () => {
    const { stream: name, subject } = await stream("parent");
    const traceId = hex(32);
    const parentId = hex(16);
    const res = await readSseFor(`${gw.url}/events/${subject}`, 300, {
      traceparent: `00-${traceId}-${parentId}-01`,
      "user-agent": "tracing-test",
    });
    expect(res.status).toBe(200);
    const [span] = await waitForSpans("the request span", requestSpans(traceId));
    expect(span?.name).toBe("GET /events/{subject}");
    expect(span?.parentSpanContext?.spanId).toBe(parentId);
    expect(span?.attributes).toMatchObject({
      "http.request.method": "GET",
      "http.route": "/events/{subject}",
      "url.path": `/events/${subject}`,
      "client.address": "127.0.0.1",
      "user_agent.original": "tracing-test",
      "http.response.status_code": 200,
      "messaging.system": "nats",
      "messaging.destination.name": subject,
      "sse.stream": name,
      "sse.start": "new",
      "sse.close_reason": "client",
      "sse.catch_up": "none",
    });
    expect(span?.status.code).toBe(SpanStatusCode.UNSET);
    expect(span?.events.map((e) => e.name)).toContain("sse.live");
  });

  it("tracing - a parent that was not sampled (flags 00) is honoured: nothing is recorded", async () => {
    const { subject } = await stream("unsampled");
    const traceId = hex(32);
    await readSseFor(`${gw.url}/events/${subject}`, 200, {
      traceparent: `00-${traceId}-${hex(16)}-00`,
    });
    // The control: the same request with a sampled parent is recorded, so the wait is long enough.
    const sampled = hex(32);
    await readSseFor(`${gw.url}/events/${subject}`, 200, {
      traceparent: `00-${sampled}-${hex(16)}-01`,
    });
    await waitForSpans("the sampled request's span", requestSpans(sampled));
    expect(spans().filter((s) => s.spanContext().traceId === traceId)).toEqual([]);
  });

  it("tracing - a 400 and a 404 each leave a span with the status and the error code, not an error status", async () => {
    const t400 = hex(32);
    const t404 = hex(32);
    const bad = await rawGet(`${gw.url}/events/a..b`, { traceparent: `00-${t400}-${hex(16)}-01` });
    expect(bad.status).toBe(400);
    const missing = await rawGet(`${gw.url}/events/nostream${hex(6)}.x`, {
      traceparent: `00-${t404}-${hex(16)}-01`,
    });
    expect(missing.status).toBe(404);
    const [s400] = await waitForSpans("the 400's span", requestSpans(t400));
    const [s404] = await waitForSpans("the 404's span", requestSpans(t404));
    expect(s400?.attributes).toMatchObject({
      "http.response.status_code": 400,
      "error.type": errorBody(bad.body).error,
    });
    expect(s400?.attributes["error.type"]).toBe("malformed_subject");
    expect(s404?.attributes).toMatchObject({
      "http.response.status_code": 404,
      "error.type": "stream_not_found",
    });
    // 4xx is the client's error: a SERVER span's status stays unset.
    expect(s400?.status.code).toBe(SpanStatusCode.UNSET);
    expect(s404?.status.code).toBe(SpanStatusCode.UNSET);
  });

  it("tracing - shed requests leave a span with the reason: 503 is an error, the browser's 200 retry stream is not", async () => {
    const tJson = hex(32);
    const tSse = hex(32);
    const { subject } = await stream("shed");
    const full = await startTestGateway(nats.url, {
      MAX_CONNECTIONS: "3",
      MAX_CONNECTIONS_PER_CLIENT: "3",
    });
    // Three open streams fill the pod.
    const holders = [0, 1, 2].map(() =>
      readSseFor(`${full.url}/events/${subject}`, 1_500).catch(() => undefined),
    );
    let json: Awaited<ReturnType<typeof rawGet>>;
    let sse: Awaited<ReturnType<typeof rawGet>>;
    try {
      await waitUntil(
        async () => metricValue(await full.metrics(), "sse_sessions") === 3,
        "three sessions",
      );
      json = await rawGet(`${full.url}/events/${subject}`, {
        traceparent: `00-${tJson}-${hex(16)}-01`,
      });
      sse = await rawGet(`${full.url}/events/${subject}`, {
        traceparent: `00-${tSse}-${hex(16)}-01`,
        accept: "text/event-stream",
      });
    } finally {
      await Promise.all(holders);
      await full.close();
    }
    expect(json.status).toBe(503);
    expect(sse.status).toBe(200);
    const [sJson] = await waitForSpans("the 503's span", requestSpans(tJson));
    const [sSse] = await waitForSpans("the shed stream's span", requestSpans(tSse));
    expect(sJson?.attributes).toMatchObject({
      "http.response.status_code": 503,
      "sse.shed_reason": "full",
      "error.type": "full",
    });
    expect(sJson?.status.code).toBe(SpanStatusCode.ERROR);
    expect(sSse?.attributes).toMatchObject({
      "http.response.status_code": 200,
      "sse.shed_reason": "full",
    });
    expect(sSse?.attributes["error.type"]).toBeUndefined();
    expect(sSse?.status.code).toBe(SpanStatusCode.UNSET);
  });

  it("tracing - a token in the query never reaches a span or a log line", async () => {
    const { subject } = await stream("redact");
    const traceId = hex(32);
    const secret = `s3cr3t${hex(12)}`;
    await readSseFor(`${gw.url}/events/${subject}?access_token=${secret}&lastEventId=0`, 200, {
      traceparent: `00-${traceId}-${hex(16)}-01`,
    });
    const [span] = await waitForSpans("the request span", requestSpans(traceId));
    expect(span?.attributes["url.query"]).toBe("access_token=REDACTED&lastEventId=0");
    expect(JSON.stringify(spans().map((s) => [s.attributes, s.events]))).not.toContain(secret);
    expect(logLines.join("\n")).not.toContain(secret);
  });
});

describe("session spans", () => {
  it("tracing - a resume from the window records the catch-up as events and a child span", async () => {
    const { subject } = await stream("window");
    const seqs = await publishMany(js, subject, 5);
    // A first client starts the feed (and warms its window).
    await readSseFor(`${gw.url}/events/${subject}`, 200);
    const traceId = hex(32);
    const res = await readSseFor(`${gw.url}/events/${subject}`, 400, {
      traceparent: `00-${traceId}-${hex(16)}-01`,
      "last-event-id": String(seqs[1]),
    });
    expect(res.text).toContain(`id: ${seqs[4]}`);
    const [span] = await waitForSpans("the session span", requestSpans(traceId));
    expect(span?.attributes).toMatchObject({
      "sse.start": "after",
      "sse.cursor": seqs[1],
      "sse.catch_up": "window",
      "sse.events": 3,
      "sse.last_seq": seqs[4],
    });
    expect(Number(span?.attributes["sse.bytes_sent"])).toBeGreaterThan(0);
    const names = span?.events.map((e) => e.name) ?? [];
    expect(names).toEqual(expect.arrayContaining(["sse.window", "sse.live"]));
    expect(names).not.toContain("sse.replay.start");
    const child = spans().find(
      (s) =>
        s.name.startsWith("catch-up ") &&
        s.parentSpanContext?.spanId === span?.spanContext().spanId,
    );
    expect(child?.attributes["sse.catch_up"]).toBe("window");
  });

  it("tracing - a resume beyond the window records the replay and a gap notice", async () => {
    const u = unique("gap");
    await js.addStream(u.stream, [`${u.prefix}.>`], { max_msgs: 5 });
    const subject = `${u.prefix}.a`;
    const seqs = await publishMany(js, subject, 12);
    const bare = await startTestGateway(nats.url, { WINDOW_MESSAGES: "0" });
    try {
      const traceId = hex(32);
      const res = await readSseFor(`${bare.url}/events/${subject}`, 600, {
        traceparent: `00-${traceId}-${hex(16)}-01`,
        "last-event-id": String(seqs[1]),
      });
      expect(res.text).toContain("event: gateway.gap");
      const [span] = await waitForSpans("the session span", requestSpans(traceId));
      expect(span?.attributes["sse.catch_up"]).toBe("replay");
      expect(span?.attributes["sse.replayed_events"]).toBe(5);
      const gap = span?.events.find((e) => e.name === "sse.gap");
      expect(gap?.attributes).toMatchObject({
        "sse.cursor": seqs[1],
        "sse.first_available": seqs[7],
        "sse.missed": 5,
      });
      const names = span?.events.map((e) => e.name) ?? [];
      expect(names.indexOf("sse.replay.start")).toBeGreaterThan(names.indexOf("sse.gap"));
      expect(names.indexOf("sse.replay.end")).toBeGreaterThan(names.indexOf("sse.replay.start"));
      expect(names.indexOf("sse.live")).toBeGreaterThan(names.indexOf("sse.replay.end"));
    } finally {
      await bare.close();
    }
  });

  it("tracing - session open and close are logged at debug with the session span's ids", async () => {
    const { subject } = await stream("logs");
    const traceId = hex(32);
    await readSseFor(`${gw.url}/events/${subject}`, 200, {
      traceparent: `00-${traceId}-${hex(16)}-01`,
    });
    const [span] = await waitForSpans("the session span", requestSpans(traceId));
    const mine = logLines
      .map((l) => JSON.parse(l) as { msg?: string; trace_id?: string; span_id?: string })
      .filter((l) => l.trace_id === traceId);
    expect(mine.map((l) => l.msg)).toEqual(
      expect.arrayContaining(["session opened", "session closed"]),
    );
    for (const line of mine) expect(line.span_id).toBe(span?.spanContext().spanId);
  });
});

describe("delivery spans", () => {
  /** Publishes as a traced backend service would: the publish span's context in the headers. */
  async function tracedPublish(subject: string, data: string): Promise<[number, SpanContext]> {
    const span = tracer().startSpan(`send ${subject}`, { kind: SpanKind.PRODUCER }, ROOT_CONTEXT);
    const carrier: Record<string, string> = {};
    propagation.inject(trace.setSpan(ROOT_CONTEXT, span), carrier);
    const seq = await js.publish(subject, data, carrier);
    span.end();
    return [seq, span.spanContext()];
  }

  it("tracing - a publisher's span context in the NATS headers shows up as a link on the delivery span", async () => {
    const { stream: name, subject } = await stream("link");
    const reading = readSseFor(`${gw.url}/events/${subject}`, 1_000);
    await waitUntil(
      async () => metricValue(await gw.metrics(), "sse_sessions") >= 1,
      "the session",
    );
    await sleep(100);
    const [seq, published] = await tracedPublish(subject, "hello");
    expect((await reading).text).toContain(`id: ${seq}`);
    const [delivery] = await waitForSpans(
      "the delivery span",
      (s) =>
        s.kind === SpanKind.CONSUMER && s.links.some((l) => l.context.spanId === published.spanId),
    );
    expect(delivery?.name).toBe(`process ${subject}`);
    // A link, not a parent: the delivery span starts a trace of its own.
    expect(delivery?.parentSpanContext).toBeUndefined();
    expect(delivery?.spanContext().traceId).not.toBe(published.traceId);
    const link = delivery?.links.find((l) => l.context.spanId === published.spanId);
    expect(link?.context.traceId).toBe(published.traceId);
    expect(link?.attributes).toEqual({ "sse.seq": seq });
    expect(delivery?.attributes).toMatchObject({
      "messaging.system": "nats",
      "messaging.operation.type": "process",
      "messaging.destination.name": subject,
      "messaging.batch.message_count": 1,
      "sse.stream": name,
      "sse.first_seq": seq,
      "sse.last_seq": seq,
      "sse.sessions": 1,
    });
  });

  it("tracing - a burst of 300 traced messages keeps every publisher's link, at most 128 per span", async () => {
    const { subject } = await stream("burst");
    const reading = readSseFor(`${gw.url}/events/${subject}`, 3_000);
    await waitUntil(
      async () => metricValue(await gw.metrics(), "sse_sessions") >= 1,
      "the session",
    );
    await sleep(100);
    const published = await Promise.all(
      Array.from({ length: 300 }, (_, i) => tracedPublish(subject, `m${i}`)),
    );
    const want = new Set(published.map(([, ctx]) => ctx.spanId));
    const isBurst = (s: ReadableSpan) =>
      s.kind === SpanKind.CONSUMER && s.name === `process ${subject}`;
    await waitUntil(
      () =>
        spans()
          .filter(isBurst)
          .flatMap((s) => s.links)
          .filter((l) => want.has(l.context.spanId)).length === 300,
      "300 links",
    );
    const burst = spans().filter(isBurst);
    for (const s of burst) expect(s.links.length).toBeLessThanOrEqual(128);
    const linked = burst.flatMap((s) => s.links.map((l) => l.attributes?.["sse.seq"]));
    expect(new Set(linked).size).toBe(300);
    await reading;
  });

  it("tracing - TRACE_BATCHES=false records no delivery spans, request spans still", async () => {
    const { subject } = await stream("nobatch");
    const quiet = await startTestGateway(nats.url, { TRACE_BATCHES: "false" });
    try {
      const traceId = hex(32);
      const reading = readSseFor(`${quiet.url}/events/${subject}`, 800, {
        traceparent: `00-${traceId}-${hex(16)}-01`,
      });
      await waitUntil(
        async () => metricValue(await quiet.metrics(), "sse_sessions") >= 1,
        "the session",
      );
      await sleep(100);
      const [seq] = await tracedPublish(subject, "x");
      expect((await reading).text).toContain(`id: ${seq}`);
      await waitForSpans("the request span", requestSpans(traceId));
      // The main gateway has no session on this subject; only `quiet` delivered it.
      expect(spans().filter((s) => s.name === `process ${subject}`)).toEqual([]);
    } finally {
      await quiet.close();
    }
  });

  it("tracing - exported spans are counted, none dropped", async () => {
    await waitUntil(
      async () =>
        metricValue(await tracingMetrics.registry.metrics(), "sse_trace_spans_exported_total") > 0,
      "exports",
    );
    const text = await tracingMetrics.registry.metrics();
    expect(metricValue(text, "sse_trace_spans_dropped_total")).toBe(0);
    expect(metricValue(text, "sse_trace_spans_exported_total")).toBe(spans().length);
  });
});
