/**
 * Tracing end to end: the built gateway as a process (what `npm start` runs), exporting with
 * the real OTLP/HTTP exporter to a receiver that decodes the real protobuf payload. The
 * standard OTEL_* variables, 3,000 sessions ending at once, a full queue, a hung collector.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { startGatewayProcess, type GatewayProcess } from "../support/gateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { startNats, type NatsHandle } from "../support/nats";
import { startOtlpReceiver, type OtlpReceiver } from "../support/otlpReceiver";
import type { DecodedSpan } from "../support/otlpProto";
import { RawSseClient } from "../support/rawSse";
import { readSseFor } from "../support/sse-client";
import { metricValue, sleep, unique, waitUntil } from "./contract-helpers";

let nats: NatsHandle;
let js: TestJetStream;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  nats = await startNats();
  js = await connectJetStream(nats.url);
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

afterAll(async () => {
  await js?.close();
  await nats?.stop();
});

const pkg = JSON.parse(readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8")) as {
  version: string;
};

const hex = (bytes: number) => randomBytes(bytes).toString("hex");

async function receiver(mode: "ok" | "hang" = "ok"): Promise<OtlpReceiver> {
  const r = await startOtlpReceiver({ mode });
  cleanups.push(() => r.close());
  return r;
}

/** A gateway process exporting to `r`, ready (NATS connected). */
async function gateway(r: OtlpReceiver, env: Record<string, string> = {}): Promise<GatewayProcess> {
  const gw = await startGatewayProcess({
    NATS_URL: nats.url,
    OTEL_EXPORTER_OTLP_ENDPOINT: r.url,
    OTEL_BSP_SCHEDULE_DELAY: "50",
    ...env,
  });
  cleanups.push(() => gw.stop());
  await waitUntil(async () => {
    const res = await fetch(`${gw.adminUrl}/readyz`).catch(() => undefined);
    await res?.body?.cancel();
    return res?.status === 200;
  }, "readiness");
  return gw;
}

async function subjectOnNewStream(label: string): Promise<{ stream: string; subject: string }> {
  const u = unique(label);
  await js.addStream(u.stream, [`${u.prefix}.>`]);
  return { stream: u.stream, subject: `${u.prefix}.a` };
}

const server = (s: DecodedSpan) => s.kind === "server";

describe("export over OTLP/HTTP", () => {
  it("tracing - spans arrive as protobuf with the parent from traceparent, the service's name and version", async () => {
    const r = await receiver();
    const gw = await gateway(r);
    const { subject } = await subjectOnNewStream("otlp");
    const traceId = hex(16);
    const parentId = hex(8);
    const res = await readSseFor(`${gw.url}/events/${subject}`, 300, {
      traceparent: `00-${traceId}-${parentId}-01`,
    });
    expect(res.status).toBe(200);
    const [span] = await r.waitFor((all) => all.some((s) => s.traceId === traceId && server(s)));
    const mine = r.spans.find((s) => s.traceId === traceId && server(s));
    expect(span).toBeDefined();
    expect(mine?.name).toBe("GET /events/{subject}");
    expect(mine?.parentSpanId).toBe(parentId);
    expect(mine?.attributes["messaging.destination.name"]).toBe(subject);
    expect(mine?.attributes["sse.close_reason"]).toBe("client");
    expect(mine?.resource["service.name"]).toBe("jetstream-sse-gateway");
    expect(mine?.resource["service.version"]).toBe(pkg.version);
    expect(r.errors).toEqual([]);
  });

  it("tracing - OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the defaults", async () => {
    const r = await receiver();
    const gw = await gateway(r, {
      OTEL_SERVICE_NAME: "orders-gateway",
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=test,service.namespace=shop",
    });
    const { subject } = await subjectOnNewStream("resource");
    await readSseFor(`${gw.url}/events/${subject}`, 200);
    const spans = await r.waitFor((all) => all.some(server));
    const resource = spans.find(server)?.resource;
    expect(resource).toMatchObject({
      "service.name": "orders-gateway",
      "service.namespace": "shop",
      "deployment.environment.name": "test",
      "service.version": pkg.version,
    });
  });

  it("tracing - a publisher's traceparent in the NATS headers is a link on the delivery span", async () => {
    const r = await receiver();
    const gw = await gateway(r);
    const { stream, subject } = await subjectOnNewStream("link");
    const reading = readSseFor(`${gw.url}/events/${subject}`, 1_500);
    await sleep(500);
    const pubTrace = hex(16);
    const pubSpan = hex(8);
    const seq = await js.publish(subject, "hi", { traceparent: `00-${pubTrace}-${pubSpan}-01` });
    expect((await reading).text).toContain(`id: ${seq}`);
    const spans = await r.waitFor((all) =>
      all.some((s) => s.kind === "consumer" && s.links.some((l) => l.spanId === pubSpan)),
    );
    const delivery = spans.find(
      (s) => s.kind === "consumer" && s.links.some((l) => l.spanId === pubSpan),
    );
    expect(delivery?.name).toBe(`process ${subject}`);
    expect(delivery?.parentSpanId).toBe("");
    expect(delivery?.links).toEqual([
      expect.objectContaining({
        traceId: pubTrace,
        spanId: pubSpan,
        attributes: { "sse.seq": seq },
      }),
    ]);
    expect(delivery?.attributes).toMatchObject({
      "messaging.batch.message_count": 1,
      "sse.stream": stream,
      "sse.sessions": 1,
    });
  });

  it("tracing - OTEL_PROPAGATORS=b3 takes the parent from a b3 header", async () => {
    const r = await receiver();
    const gw = await gateway(r, { OTEL_PROPAGATORS: "b3" });
    const { subject } = await subjectOnNewStream("b3");
    const traceId = hex(16);
    const parentId = hex(8);
    await readSseFor(`${gw.url}/events/${subject}`, 200, { b3: `${traceId}-${parentId}-1` });
    const spans = await r.waitFor((all) => all.some((s) => s.traceId === traceId && server(s)));
    expect(spans.find((s) => s.traceId === traceId && server(s))?.parentSpanId).toBe(parentId);
  });

  it("tracing - OTEL_TRACES_EXPORTER=console prints each span on stdout, for local debugging", async () => {
    const r = await receiver();
    const gw = await gateway(r, { OTEL_TRACES_EXPORTER: "console", LOG_LEVEL: "info" });
    const { subject } = await subjectOnNewStream("console");
    const traceId = hex(16);
    await readSseFor(`${gw.url}/events/${subject}`, 200, {
      traceparent: `00-${traceId}-${hex(8)}-01`,
    });
    await waitUntil(
      () => gw.logs().includes(traceId) && gw.logs().includes("GET /events/{subject}"),
      "the request span on stdout",
    );
    // The console exporter replaces OTLP: nothing reached the collector.
    expect(r.requests).toBe(0);
  });

  it("tracing - OTEL_SDK_DISABLED=true and OTEL_TRACES_SAMPLER=always_off export nothing", async () => {
    const r = await receiver();
    const off = await gateway(r, { OTEL_SDK_DISABLED: "true" });
    const never = await gateway(r, { OTEL_TRACES_SAMPLER: "always_off" });
    const on = await gateway(r);
    const { subject } = await subjectOnNewStream("off");
    for (const gw of [off, never]) await readSseFor(`${gw.url}/events/${subject}`, 200);
    // The control: the same request to a gateway with tracing on arrives, so the wait suffices.
    await readSseFor(`${on.url}/events/${subject}`, 200);
    await r.waitFor((all) => all.some(server));
    await sleep(300);
    expect(r.spans.filter(server)).toHaveLength(1);
    expect(
      metricValue(
        await (await fetch(`${off.adminUrl}/metrics`)).text(),
        "sse_trace_queue_spans_max",
      ),
    ).toBe(0);
  });
});

describe("nothing dropped silently", () => {
  /** Opens `n` streams from distinct loopback addresses (100 per address). */
  async function openMany(gw: GatewayProcess, subject: string, n: number): Promise<RawSseClient[]> {
    const clients: RawSseClient[] = [];
    for (let i = 0; i < n; i += 100) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(100, n - i) }, () =>
          RawSseClient.open({
            port: gw.port,
            localAddress: `127.0.${20 + Math.floor(i / 100)}.1`,
            path: `/events/${subject}`,
            headers: { accept: "text/event-stream" },
          }),
        ),
      );
      clients.push(...batch);
    }
    cleanups.push(async () => clients.forEach((c) => c.close()));
    for (const c of clients) c.startReading();
    await waitUntil(
      async () =>
        metricValue(await (await fetch(`${gw.adminUrl}/metrics`)).text(), "sse_sessions") === n,
      `${n} sessions`,
      60_000,
    );
    return clients;
  }

  it("tracing - 3,000 sessions ending at once (a drain) all produce their spans", async () => {
    const r = await receiver();
    const gw = await gateway(r, { DRAIN_WINDOW_MS: "0", SHUTDOWN_TIMEOUT_MS: "20000" });
    const { subject } = await subjectOnNewStream("many");
    await openMany(gw, subject, 3_000);
    gw.kill("SIGTERM");
    expect(await gw.waitForExit(30_000)).toBe(0);
    const sessions = r.spans.filter(
      (s) => server(s) && s.attributes["sse.close_reason"] === "drain",
    );
    expect(sessions).toHaveLength(3_000);
    expect(new Set(sessions.map((s) => s.spanId)).size).toBe(3_000);
    expect(gw.logs()).not.toContain("spans were dropped");
  }, 120_000);

  it("tracing - spans the queue cannot hold are counted and logged, and a hung collector does not hold the exit", async () => {
    const r = await receiver("hang");
    const gw = await gateway(r, {
      TRACE_QUEUE_SPANS: "200",
      OTEL_BSP_EXPORT_TIMEOUT: "60000",
      DRAIN_WINDOW_MS: "0",
      SHUTDOWN_TIMEOUT_MS: "3000",
    });
    const { subject } = await subjectOnNewStream("full");
    const clients = await openMany(gw, subject, 600);
    // 600 sessions end: 200 fill the queue, 200 more wait behind the export the collector
    // never answers... and the rest cannot be kept.
    for (const c of clients) c.close();
    let text = "";
    await waitUntil(async () => {
      text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      return metricValue(text, "sse_sessions") === 0;
    }, "sessions closed");
    await waitUntil(async () => {
      text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      return metricValue(text, "sse_trace_spans_dropped_total", { reason: "queue-full" }) > 0;
    }, "drops counted");
    expect(metricValue(text, "sse_trace_queue_spans_max")).toBe(200);
    expect(metricValue(text, "sse_trace_queue_spans")).toBeLessThanOrEqual(200);
    await waitUntil(() => gw.logs().includes("spans were dropped"), "the warning");
    expect(r.requests).toBeGreaterThan(0); // the export that hangs

    gw.kill("SIGTERM");
    // SHUTDOWN_TIMEOUT_MS=3000 bounds the whole exit, the flush to the hung collector included
    // (its own export timeout here is a minute); 2 s of slack for process start-up and exit.
    expect(await gw.waitForExit(5_000)).toBe(0);
  }, 120_000);
});
