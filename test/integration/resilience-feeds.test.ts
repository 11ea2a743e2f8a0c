/**
 * Live feeds against a nats-server that goes away and comes back, and against a consumer that
 * stops delivering while the stream moves on: the gateway recovers live delivery by itself
 * (DESIGN invariant 1 across the outage), counts what its watchdog did, and shows it in
 * readiness. Real nats-server, the gateway in this process, real EventSource clients.
 */
import { randomUUID } from "node:crypto";
import type { TestJetStream } from "../support/jetstream";
import { useNatsAndGateway } from "./natsGateway";
import { rawGet, SseRecorder } from "../support/sse-client";
import {
  expectStrictlyIncreasing,
  messageIds,
  metricValue,
  sleep,
  unique,
  waitUntil,
} from "./contract-helpers";

jest.setTimeout(180_000);

/**
 * Correctness bound, not a speed assertion: once NATS is back, every client must have every
 * message by then. nats.js alone stalls 30 to 60 s here; the gateway must not.
 */
const RECOVERY_BOUND_MS = 15_000;
const CLIENTS = 100;

/**
 * Publishes until JetStream acknowledges. The message id makes a retried publish that had in
 * fact been stored come back as a duplicate with the original sequence.
 */
async function publishAcked(js: TestJetStream, subject: string, data: string): Promise<number> {
  const msgId = randomUUID();
  for (let attempt = 1; ; attempt++) {
    try {
      return await js.publish(subject, data, { "Nats-Msg-Id": msgId });
    } catch (err) {
      if (attempt >= 300) throw new Error(`publish to ${subject} never acked`, { cause: err });
      await sleep(100);
    }
  }
}

/** A publisher at about `perSecond` messages per second until stopped; rides out outages. */
function steadyPublisher(js: TestJetStream, subject: string, perSecond: number) {
  const published: number[] = [];
  let stopped = false;
  let failure: unknown;
  const done = (async () => {
    for (let i = 0; !stopped && i < 100_000; i++) {
      published.push(await publishAcked(js, subject, `tick ${i}`));
      await sleep(1_000 / perSecond);
    }
  })().catch((err: unknown) => (failure = err));
  return {
    published,
    failure: () => failure,
    async stop(): Promise<void> {
      stopped = true;
      await done;
    },
  };
}

describe("feeds when nats-server goes away under 100 clients and a steady publisher", () => {
  const f = useNatsAndGateway({
    NATS_RECONNECT_MIN_MS: "50",
    NATS_RECONNECT_MAX_MS: "500",
    NATS_REQUEST_TIMEOUT_MS: "2000",
    RETRY_MS: "300",
    SHED_RETRY_MS: "300",
    MAX_CONNECTIONS_PER_CLIENT: "1000",
  });
  const clients: SseRecorder[] = [];

  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });

  it.each([
    ["is killed with SIGKILL and restarted on the same store", () => f.nats.kill()],
    ["is restarted gracefully", () => f.nats.stop()],
  ])(
    "recovery - when nats-server %s, live delivery resumes and every client gets every message exactly once, in order",
    async (_label, goAway) => {
      const { stream, prefix } = unique("outage");
      await f.js.addStream(stream, [`${prefix}.>`]);
      const subject = `${prefix}.ticks`;
      for (let i = 0; i < CLIENTS; i++)
        clients.push(new SseRecorder(`${f.gw.url}/events/${subject}`));
      await waitUntil(() => clients.every((c) => c.opens >= 1), "every client to open", 30_000);
      const restartsBefore = metricValue(await f.gw.metrics(), "sse_feed_restarts_total");

      const publisher = steadyPublisher(f.js, subject, 100);
      await waitUntil(() => publisher.published.length >= 50, "50 messages published", 30_000);
      const early = publisher.published[49] as number;
      await waitUntil(
        () => clients.every((c) => messageIds(c.events).includes(early)),
        "every client to receive the first 50 messages",
        30_000,
      );

      await goAway();
      await sleep(1_000);
      await f.nats.start();

      // The publisher goes on for about three seconds after NATS is back, then stops.
      const backAt = publisher.published.length;
      await waitUntil(
        () => publisher.published.length >= backAt + 300 || publisher.failure() !== undefined,
        "300 messages published after the restart",
        60_000,
      );
      await publisher.stop();
      expect(publisher.failure()).toBeUndefined();
      const published = publisher.published;
      const last = published[published.length - 1] as number;
      expect(new Set(published).size).toBe(published.length);

      await waitUntil(
        () => clients.every((c) => messageIds(c.events).includes(last)),
        `every client to receive the last message (${last}) within ${RECOVERY_BOUND_MS} ms of the publisher stopping`,
        RECOVERY_BOUND_MS,
        50,
      );
      await sleep(300); // anything duplicated or late would show now
      for (const c of clients) {
        const ids = messageIds(c.events);
        expectStrictlyIncreasing(ids);
        expect(ids).toEqual(published);
        // Nothing was lost, so nothing may be announced as lost.
        expect(c.events.filter((e) => e.type !== "message")).toEqual([]);
      }

      // The feed was restarted by the gateway (not left to nats.js), and readiness says so.
      const metrics = await f.gw.metrics();
      expect(metricValue(metrics, "sse_feed_restarts_total")).toBeGreaterThan(restartsBefore);
      await waitUntil(
        async () => (await rawGet(`${f.gw.adminUrl}/readyz`)).status === 200,
        "/readyz to answer 200 once the feeds run again",
        30_000,
        100,
      );
      const ready = JSON.parse((await rawGet(`${f.gw.adminUrl}/readyz`)).body) as {
        checks: Record<string, boolean>;
        feeds: { stalled: number };
      };
      expect(ready.checks.feeds).toBe(true);
      expect(ready.feeds.stalled).toBe(0);
    },
  );
});

describe("the feed watchdog", () => {
  const f = useNatsAndGateway({
    FEED_HEARTBEAT_MS: "500",
    FEED_WATCHDOG_MS: "1500",
    RETRY_MS: "300",
    SHED_RETRY_MS: "300",
  });
  const clients: SseRecorder[] = [];

  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });

  const restarts = async (reason?: string) =>
    metricValue(
      await f.gw.metrics(),
      "sse_feed_restarts_total",
      reason === undefined ? undefined : { reason },
    );

  it("watchdog - a feed whose consumer stops delivering while the stream moves on is restarted, and its client loses nothing", async () => {
    const { stream, prefix } = unique("paused");
    await f.js.addStream(stream, [`${prefix}.>`]);
    const subject = `${prefix}.t`;
    const client = new SseRecorder(`${f.gw.url}/events/${subject}`);
    clients.push(client);
    await waitUntil(() => client.opens >= 1, "the client to open");
    const published: number[] = [];
    for (let i = 0; i < 5; i++) published.push(await f.js.publish(subject, `before ${i}`));
    await waitUntil(
      () => messageIds(client.events).length === 5,
      "the first five messages to arrive",
    );
    const before = await restarts("behind");

    // The server keeps the feed's consumer and its heartbeats, but delivers nothing: nats.js
    // sees nothing wrong. (Pausing is how an operator, or a server in trouble, can do that.)
    const consumers: string[] = [];
    for await (const ci of f.js.jsm.consumers.list(stream)) consumers.push(ci.name);
    expect(consumers).toHaveLength(1);
    await f.js.jsm.consumers.pause(stream, consumers[0] as string, new Date(Date.now() + 600_000));

    for (let i = 0; i < 5; i++) published.push(await f.js.publish(subject, `after ${i}`));
    const last = published[published.length - 1] as number;
    await waitUntil(
      () => messageIds(client.events).includes(last),
      "the messages published after the pause to arrive",
      RECOVERY_BOUND_MS,
      50,
    );
    await sleep(300);
    expect(messageIds(client.events)).toEqual(published);
    expect(client.events.filter((e) => e.type !== "message")).toEqual([]);
    expect(client.opens).toBe(1); // recovered in place: the connection stayed open
    expect(await restarts("behind")).toBeGreaterThan(before);
  });

  it.each([
    ["one subject", (p: string) => `/events/${p}.quiet.a`],
    ["a set of subjects", (p: string) => `/events?subject=${p}.quiet.a&subject=${p}.quiet.b`],
    ["a wildcard", (p: string) => `/events/${p}.quiet.*`],
  ])("watchdog - a quiet feed on %s on a busy stream is left alone", async (_label, path) => {
    const { stream, prefix } = unique("quiet");
    await f.js.addStream(stream, [`${prefix}.>`]);
    const client = new SseRecorder(`${f.gw.url}${path(prefix)}`);
    clients.push(client);
    await waitUntil(() => client.opens >= 1, "the client to open");
    const before = await restarts();
    // Four watchdog periods of traffic the feed does not match.
    for (let i = 0; i < 120; i++) {
      await f.js.publish(`${prefix}.busy`, `noise ${i}`);
      await sleep(50);
    }
    const quiet = await f.js.publish(`${prefix}.quiet.a`, "at last");
    await waitUntil(() => messageIds(client.events).includes(quiet), "the quiet message");
    expect(messageIds(client.events)).toEqual([quiet]);
    expect(await restarts()).toBe(before);
  });
});
