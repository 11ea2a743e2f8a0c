/**
 * The JetStream API calls a client request can cause (stream info for cursor checks, replay
 * consumers, `?last=` probes) are bounded per instance (invariant 6), against a real
 * nats-server and the real gateway over HTTP. The gateway's NATS connection is watched, not
 * mocked: every API request still goes to the server, only counted (and held, where a test
 * needs JetStream to be slow).
 */
import { startNats, type NatsHandle } from "../support/nats";
import { startTestGateway, type TestGateway } from "../support/inProcessGateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { RawSseClient } from "../support/rawSse";
import { SseRecorder, type Received } from "../support/sse-client";
import {
  expectStrictlyIncreasing,
  idsOf,
  metricValue,
  openRecorder,
  sleep,
  Tracker,
  unique,
  waitForId,
  waitUntil,
} from "./contract-helpers";

let nats: NatsHandle;
let js: TestJetStream;
const tracker = new Tracker();
const gateways: TestGateway[] = [];
/** Lets JetStream answer again; afterEach calls it too, so a failed test leaves nothing held. */
let openGate = () => {};

beforeAll(async () => {
  nats = await startNats();
  js = await connectJetStream(nats.url);
});

afterEach(async () => {
  openGate();
  await tracker.closeAll();
  for (const g of gateways.splice(0)) await g.close();
});

afterAll(async () => {
  await js?.close();
  await nats?.close();
});

/** No window: every `?last=` and every resume is worked out against JetStream. */
async function gateway(env: Record<string, string>): Promise<TestGateway> {
  const g = await startTestGateway(nats.url, { WINDOW_MESSAGES: "0", ...env });
  gateways.push(g);
  return g;
}

interface ApiWatch {
  /** JetStream API requests made so far. */
  calls: number;
  /** The most that were in flight at once. */
  maxInFlight: number;
  /** Each API request waits for this before it is sent (JetStream answering slowly). */
  hold: () => Promise<void>;
}

/** Counts the gateway's JetStream API requests on its own NATS connection, from now on. */
function watchApi(g: TestGateway): ApiWatch {
  const nc = g.gateway.deps.nats?.broker.nc;
  if (!nc) throw new Error("gateway has no NATS connection");
  const request = nc.request.bind(nc);
  const watch: ApiWatch = { calls: 0, maxInFlight: 0, hold: () => Promise.resolve() };
  let inFlight = 0;
  nc.request = async (subject, payload, opts) => {
    if (!subject.startsWith("$JS.API.")) return request(subject, payload, opts);
    watch.calls++;
    inFlight++;
    watch.maxInFlight = Math.max(watch.maxInFlight, inFlight);
    try {
      await watch.hold();
      return await request(subject, payload, opts);
    } finally {
      inFlight--;
    }
  };
  return watch;
}

function expectExactly(events: readonly Received[], expected: readonly number[]): void {
  const ids = idsOf(events);
  expectStrictlyIncreasing(ids);
  expect(ids).toEqual(expected);
}

/** A stream whose subject `<prefix>.a` holds every third of `n` messages. */
async function sparseStream(label: string, n: number) {
  const { stream, prefix } = unique(label);
  await js.addStream(stream, [`${prefix}.>`]);
  const a: number[] = [];
  for (let i = 0; i < n; i++) {
    const seq = await js.publish(`${prefix}.${i % 3 === 0 ? "a" : "b"}`, `m${i}`);
    if (i % 3 === 0) a.push(seq);
  }
  return { subject: `${prefix}.a`, a };
}

describe("JetStream API calls caused by requests", () => {
  it("amplification - ?last= probes, cursor checks and replay consumers never exceed JETSTREAM_API_MAX_CONCURRENT calls in flight", async () => {
    const g = await gateway({ JETSTREAM_API_MAX_CONCURRENT: "2" });
    const { subject, a } = await sparseStream("apibound", 90);
    // The feed runs and the subject's stream is known before the flood.
    await openRecorder(tracker, `${g.url}/events/${subject}`);
    const watch = watchApi(g);
    // JetStream answering each API request in 20 ms makes calls overlap if they can.
    watch.hold = () => sleep(20);

    const lastN = Array.from({ length: 6 }, () =>
      openRecorder(tracker, `${g.url}/events/${subject}?last=5`),
    );
    const cursor = a[10] as number;
    const resumes = Array.from({ length: 4 }, () =>
      openRecorder(tracker, `${g.url}/events/${subject}`, {
        headers: { "Last-Event-ID": String(cursor) },
      }),
    );
    const clients = await Promise.all([...lastN, ...resumes]);
    for (const rec of clients.slice(0, 6)) await rec.waitForCount(5);
    for (const rec of clients.slice(6)) await waitForId(rec, a[a.length - 1] as number);
    const live = await js.publish(subject, "live");
    for (const rec of clients) await waitForId(rec, live);

    for (const rec of clients.slice(0, 6)) expectExactly(rec.events, [...a.slice(-5), live]);
    for (const rec of clients.slice(6))
      expectExactly(rec.events, [...a.filter((s) => s > cursor), live]);
    // Ten requests made dozens of API calls, never more than two at a time.
    expect(watch.calls).toBeGreaterThanOrEqual(20);
    expect(watch.maxInFlight).toBeLessThanOrEqual(2);
    expect(watch.maxInFlight).toBeGreaterThanOrEqual(1);
    await waitUntil(
      async () => metricValue(await g.metrics(), "sse_jetstream_api_active") === 0,
      "every API slot to be given back",
    );
    expect(metricValue(await g.metrics(), "sse_jetstream_api_refused_total")).toBe(0);
  });

  it("amplification - when JETSTREAM_API_MAX_QUEUED calls wait, a request is shed with retry: and the browser comes back by itself", async () => {
    const g = await gateway({
      JETSTREAM_API_MAX_CONCURRENT: "1",
      JETSTREAM_API_MAX_QUEUED: "1",
      SHED_RETRY_MS: "300",
      // The feed's window stays trusted for the whole test: with JetStream held below, a join
      // that needed a fresh stream check (WINDOW_CHECK_MS, bounded per stream, not per request)
      // would wait for it and never reach the API limiter this test is about.
      WINDOW_CHECK_MS: "60000",
    });
    const { subject, a } = await sparseStream("apished", 30);
    await openRecorder(tracker, `${g.url}/events/${subject}`);
    const watch = watchApi(g);
    // JetStream stops answering until the test lets it.
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    watch.hold = () => gate;
    const port = Number(new URL(g.url).port);
    const request = (localAddress: string) =>
      RawSseClient.open({ port, localAddress, path: `/events/${subject}?last=3` }).then((c) => {
        tracker.add(c);
        c.startReading();
        return c;
      });

    // One call in flight, one waiting: the API limiter is full.
    const first = await request("127.0.0.11");
    const second = await request("127.0.0.12");
    await waitUntil(async () => {
      const m = await g.metrics();
      return (
        metricValue(m, "sse_jetstream_api_active") === 1 &&
        metricValue(m, "sse_jetstream_api_queued") === 1
      );
    }, "one API call in flight and one queued");

    // A third request is shed: its stream carries no event, names the reason, tells the
    // browser when to come back, and ends.
    const shed = await request("127.0.0.13");
    await shed.waitFor(() => shed.ended, "the shed stream to end", 10_000);
    expect(shed.status).toBe(200);
    expect(shed.ids).toEqual([]);
    expect(shed.comments).toContain("api-queue-full");
    expect(shed.retries.length).toBeGreaterThanOrEqual(1);
    expect(shed.retries[shed.retries.length - 1]).toBeGreaterThanOrEqual(150);
    expect(shed.retries[shed.retries.length - 1]).toBeLessThan(450);

    // A browser turned away the same way retries by itself, and is served once JetStream is
    // back.
    const browser = tracker.add(new SseRecorder(`${g.url}/events/${subject}?last=3`));
    await waitUntil(
      async () =>
        metricValue(await g.metrics(), "sse_sessions_closed_total", {
          reason: "api-queue-full",
        }) >= 2,
      "the browser to be shed too",
    );
    openGate();
    await browser.waitForCount(3, 15_000);
    for (const c of [first, second])
      await c.waitFor(() => c.ids.length >= 3, "the queued requests to be served");
    const live = await js.publish(subject, "live");
    await waitForId(browser, live);
    expectExactly(browser.events, [...a.slice(-3), live]);
    expect(browser.opens).toBeGreaterThanOrEqual(2);
    for (const c of [first, second]) expect(c.ids.slice(0, 3)).toEqual(a.slice(-3));
    expect(
      metricValue(await g.metrics(), "sse_jetstream_api_refused_total"),
    ).toBeGreaterThanOrEqual(2);
  });
});
