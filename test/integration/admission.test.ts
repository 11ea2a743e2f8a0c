/**
 * Connection bounds (invariants 6 and 7), health and metrics endpoints, against a real
 * nats-server and the real gateway over HTTP. A full gateway must answer browsers so that
 * EventSource comes back by itself, and answer other clients with a status they understand.
 */
import { startNats, type NatsHandle } from "../support/nats";
import { startTestGateway, type TestGateway } from "../support/inProcessGateway";
import { startGatewayProcess, type GatewayProcess } from "../support/gateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { rawGet, readSseFor, SseRecorder } from "../support/sse-client";
import {
  errorBody,
  metricValue,
  openRecorder,
  Tracker,
  unique,
  waitForId,
  waitUntil,
} from "./contract-helpers";

let nats: NatsHandle;
let js: TestJetStream;
let subject: string;
const tracker = new Tracker();
const gateways: TestGateway[] = [];

beforeAll(async () => {
  nats = await startNats();
  js = await connectJetStream(nats.url);
  const { stream, prefix } = unique("adm");
  await js.addStream(stream, [`${prefix}.>`]);
  subject = `${prefix}.t`;
});

afterEach(() => tracker.closeAll());

afterAll(async () => {
  await tracker.closeAll();
  for (const g of gateways.splice(0)) await g.close();
  await js?.close();
  await nats?.close();
});

async function gateway(env: Record<string, string> = {}): Promise<TestGateway> {
  const g = await startTestGateway(nats.url, env);
  gateways.push(g);
  return g;
}

/** What a browser's EventSource sends. */
const EVENT_STREAM = { Accept: "text/event-stream" };

/** The shed answer for EventSource: a 200 stream carrying only `retry:` that ends at once. */
async function expectShedStream(url: string): Promise<void> {
  // rawGet reads the body to its end (and fails after 5 s if it never ends).
  const res = await rawGet(url, EVENT_STREAM);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
  expect(res.body).toMatch(/^retry: \d+\n/);
  expect(res.body).not.toMatch(/^(id|data):/m);
}

describe("admission", () => {
  it("admission - over MAX_CONNECTIONS, EventSource gets a 200 with retry: that ends, others a 503 with Retry-After", async () => {
    const g = await gateway({
      MAX_CONNECTIONS: "2",
      MAX_CONNECTIONS_PER_CLIENT: "2",
      CLIENT_LIMIT_BY: "address",
    });
    const url = `${g.url}/events/${subject}`;
    const a = await openRecorder(tracker, url);
    const b = await openRecorder(tracker, url);

    await expectShedStream(url);

    const plain = await rawGet(url);
    expect(plain.status).toBe(503);
    expect(errorBody(plain.body).error).toBe("full");
    const retryAfter = Number(plain.headers.get("retry-after"));
    expect(Number.isInteger(retryAfter) && retryAfter >= 1).toBe(true);

    // The admitted clients are untouched.
    const seq = await js.publish(subject, "still served");
    await waitForId(a, seq);
    await waitForId(b, seq);
    expect(metricValue(await g.metrics(), "sse_requests_shed_total", { reason: "full" })).toBe(2);
  });

  it("admission - /readyz is 503 while full and 200 again once a client leaves", async () => {
    const g = await gateway({
      MAX_CONNECTIONS: "2",
      MAX_CONNECTIONS_PER_CLIENT: "2",
      CLIENT_LIMIT_BY: "address",
    });
    const url = `${g.url}/events/${subject}`;
    const ready = await rawGet(`${g.adminUrl}/readyz`);
    expect(ready.status).toBe(200);

    const a = await openRecorder(tracker, url);
    await openRecorder(tracker, url);
    const full = await rawGet(`${g.adminUrl}/readyz`);
    expect(full.status).toBe(503);
    const body = JSON.parse(full.body) as { checks: Record<string, boolean> };
    expect(body.checks).toMatchObject({ nats: true, jetstream: true, capacity: false });

    a.close();
    let status = 0;
    await waitUntil(async () => {
      status = (await rawGet(`${g.adminUrl}/readyz`)).status;
      return status === 200;
    }, "/readyz to be 200 after a client left");
    expect(status).toBe(200);

    // And the freed slot admits a new stream.
    const c = await openRecorder(tracker, url);
    const seq = await js.publish(subject, "admitted again");
    await waitForId(c, seq);
  });

  it("admission - over MAX_CONNECTIONS_PER_CLIENT, plain requests get 429 and EventSource a retry stream", async () => {
    const g = await gateway({
      MAX_CONNECTIONS: "10",
      MAX_CONNECTIONS_PER_CLIENT: "1",
      CLIENT_LIMIT_BY: "address",
    });
    const url = `${g.url}/events/${subject}`;
    const a = await openRecorder(tracker, url);

    const plain = await rawGet(url);
    expect(plain.status).toBe(429);
    expect(errorBody(plain.body).error).toBe("client_limit");
    expect(Number(plain.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);

    await expectShedStream(url);

    // The per-client bound does not make the pod unready: other clients are welcome.
    expect((await rawGet(`${g.adminUrl}/readyz`)).status).toBe(200);
    const seq = await js.publish(subject, "still served");
    await waitForId(a, seq);
  });

  it("admission - an EventSource turned away comes back by itself and is served once there is room", async () => {
    const g = await gateway({
      MAX_CONNECTIONS: "1",
      MAX_CONNECTIONS_PER_CLIENT: "1",
      CLIENT_LIMIT_BY: "address",
      SHED_RETRY_MS: "200",
    });
    const url = `${g.url}/events/${subject}`;
    const first = await openRecorder(tracker, url);
    const second = tracker.add(new SseRecorder(url));
    // The shed answer is a 200 that ends: EventSource reconnects after `retry:` instead of
    // giving up (it gives up for good on any non-200).
    await second.waitFor(() => second.opens >= 2, 10_000);
    first.close();
    // Opened sessions count only admitted streams: the second is one once this reaches 2.
    await waitUntil(
      async () => metricValue(await g.metrics(), "sse_sessions_opened_total") === 2,
      "the second client to be admitted",
    );
    const seq = await js.publish(subject, "finally");
    await waitForId(second, seq);
    expect(second.events.map((e) => e.data)).toEqual(["finally"]);
  });

  it("admission - refused requests do not use up slots", async () => {
    const g = await gateway({
      MAX_CONNECTIONS: "2",
      MAX_CONNECTIONS_PER_CLIENT: "2",
      CLIENT_LIMIT_BY: "address",
    });
    for (let i = 0; i < 20; i++) {
      const res = await rawGet(`${g.url}/events/nostream${i}.x`);
      expect(res.status).toBe(404);
    }
    for (let i = 0; i < 5; i++) {
      const res = await rawGet(`${g.url}/events/${subject}`, { "Last-Event-ID": "bad" });
      expect(res.status).toBe(400);
    }
    const a = await openRecorder(tracker, `${g.url}/events/${subject}`);
    const b = await openRecorder(tracker, `${g.url}/events/${subject}`);
    const seq = await js.publish(subject, "two fit");
    await waitForId(a, seq);
    await waitForId(b, seq);
  });
});

describe("health and metrics", () => {
  it("health - /livez is 200 and /readyz is 200 with every check passing", async () => {
    const g = await gateway();
    const live = await rawGet(`${g.adminUrl}/livez`);
    expect(live.status).toBe(200);
    expect(JSON.parse(live.body)).toEqual({ status: "ok" });
    const ready = await rawGet(`${g.adminUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toMatchObject({
      status: "ready",
      checks: { nats: true, jetstream: true, capacity: true, draining: false },
    });
  });

  it("admin port - probes and metrics are served on ADMIN_PORT only, never on the public port", async () => {
    const g = await gateway();
    expect(g.adminUrl).not.toBe(g.url);
    for (const path of ["/livez", "/readyz", "/metrics"]) {
      expect((await rawGet(`${g.adminUrl}${path}`)).status).toBe(200);
      const pub = await rawGet(`${g.url}${path}`);
      expect(pub.status).toBe(404);
      expect(errorBody(pub.body).error).toBe("not_found");
    }
    // And the admin port serves nothing else: no events, no demo page.
    expect((await rawGet(`${g.adminUrl}/events/${subject}`)).status).toBe(404);
  });

  it("metrics - /metrics is Prometheus text that counts open sessions", async () => {
    const g = await gateway();
    const scrape = async () => {
      const res = await rawGet(`${g.adminUrl}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
      return res.body;
    };
    const before = await scrape();
    expect(before).toMatch(/^# TYPE sse_sessions gauge$/m);
    expect(metricValue(before, "sse_sessions")).toBe(0);

    const rec = await openRecorder(tracker, `${g.url}/events/${subject}`);
    const seq = await js.publish(subject, "counted");
    await waitForId(rec, seq);
    const during = await scrape();
    expect(metricValue(during, "sse_sessions")).toBe(1);
    expect(metricValue(during, "sse_feeds")).toBe(1);
    expect(metricValue(during, "sse_sessions_opened_total", { start: "new" })).toBe(1);
    expect(metricValue(during, "sse_events_sent_total")).toBeGreaterThanOrEqual(1);

    rec.close();
    await waitUntil(
      async () => metricValue(await scrape(), "sse_sessions") === 0,
      "sse_sessions to fall back to 0",
    );
  });

  it("npm start - the built gateway serves health, metrics and a live stream", async () => {
    let proc: GatewayProcess | undefined;
    try {
      proc = await startGatewayProcess({ NATS_URL: nats.url });
      const p = proc;
      await waitUntil(
        async () => (await rawGet(`${p.adminUrl}/readyz`)).status === 200,
        "the built gateway to be ready",
        15_000,
        100,
      );
      expect((await rawGet(`${p.adminUrl}/livez`)).status).toBe(200);
      expect((await rawGet(`${p.adminUrl}/metrics`)).body).toMatch(/^sse_sessions 0$/m);
      const reading = readSseFor(`${p.url}/events/${subject}`, 2_000);
      await waitUntil(
        async () => metricValue((await rawGet(`${p.adminUrl}/metrics`)).body, "sse_sessions") === 1,
        "the stream to open",
      );
      const seq = await js.publish(subject, "from the built gateway");
      const { status, text } = await reading;
      expect(status).toBe(200);
      expect(text).toContain(`id: ${seq}\ndata: from the built gateway\n\n`);
    } finally {
      await proc?.stop();
    }
  });
});

describe("lingering feeds (invariant 6)", () => {
  it("feeds without clients linger, but never more than FEED_LINGER_MAX of them", async () => {
    const g = await gateway({ FEED_LINGER_MS: "60000", FEED_LINGER_MAX: "2" });
    const { stream, prefix } = unique("linger");
    await js.addStream(stream, [`${prefix}.>`]);
    // Five subjects one after the other, each client leaving before the next comes.
    for (let i = 0; i < 5; i++) {
      const rec = await openRecorder(tracker, `${g.url}/events/${prefix}.s${i}`);
      const seq = await js.publish(`${prefix}.s${i}`, `m${i}`);
      await waitForId(rec, seq);
      rec.close();
      await waitUntil(
        async () => metricValue(await g.metrics(), "sse_sessions") === 0,
        "the client to leave",
      );
    }
    // Each feed is one ordered consumer on the stream: two lingering feeds, two consumers.
    await waitUntil(
      async () => (await js.jsm.streams.info(stream)).state.consumer_count === 2,
      "two consumers on the stream",
    );
    expect(metricValue(await g.metrics(), "sse_feeds")).toBe(2);
  });
});
