/**
 * A token expiring mid-stream, in Chromium: the demo page with authorization on (DEMO=true and
 * AUTH_JWT_SECRET) fetches 3-second tokens from /demo/token. Each time the gateway ends the
 * stream with `gateway.token_expired`, the page closes its EventSource, fetches a fresh token and
 * reopens from the notice's lastEventId. Messages are published the whole time: the page must end
 * up with every one of them exactly once, in order, across the renewals.
 *
 * Run `npm run build` first. CHROMIUM_PATH overrides /usr/bin/chromium.
 */
import { randomBytes } from "node:crypto";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "../support/chromium";
import { startGatewayProcess, type GatewayProcess } from "../support/gateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { startNats, type NatsHandle } from "../support/nats";
import { sleep } from "../support/process";

const WAIT_MS = 30_000;
/** The token lifetime the page asks for (the demo endpoint's least). */
const TTL_S = 3;
/** Publishing: one message every PUBLISH_EVERY_MS for PUBLISH_FOR_MS, never more than MAX. */
const PUBLISH_EVERY_MS = 100;
const PUBLISH_FOR_MS = 10_000;
const MAX_PUBLISHED = 150;

/** What demo/index.html pushes into `window.received` for every event. */
interface PageEvent {
  id: string;
  type: string;
  data: string;
}

interface DemoPage {
  received: PageEvent[];
  renewals?: number;
}

describe("Chromium's EventSource on the demo page with authorization on", () => {
  let nats: NatsHandle;
  let js: TestJetStream;
  let browser: Browser | undefined;
  let gateway: GatewayProcess | undefined;

  beforeAll(async () => {
    nats = await startNats();
    js = await connectJetStream(nats.url);
    await js.addStream("DEMO", ["demo.>"]);
    gateway = await startGatewayProcess({
      NATS_URL: nats.url,
      DEMO: "true",
      AUTH_JWT_SECRET: randomBytes(48).toString("base64url"),
      // A stream ends at exp + AUTH_JWT_LEEWAY_S: no skew, so 3-second tokens end after 3 s.
      AUTH_JWT_LEEWAY_S: "0",
      DRAIN_WINDOW_MS: "200",
      SHED_RETRY_MS: "300",
      RETRY_MS: "300",
      HEARTBEAT_MS: "1000",
    });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await gateway?.stop();
    await js?.close().catch(() => undefined);
    await nats?.close();
  });

  async function received(page: Page): Promise<PageEvent[]> {
    return page.evaluate(() => (globalThis as unknown as DemoPage).received);
  }

  async function waitForId(page: Page, id: number): Promise<void> {
    try {
      await page.waitForFunction(
        (want) =>
          (globalThis as unknown as DemoPage).received.some(
            (e) => e.type === "message" && e.id === want,
          ),
        String(id),
        { timeout: WAIT_MS, polling: 100 },
      );
    } catch (err) {
      const got = (await received(page).catch(() => [])).map((e) => `${e.type}#${e.id}`);
      const logs = gateway?.logs() ?? "";
      throw new Error(
        `event ${id} never reached the page; it has ${got.join(" ")}\ngateway logs:\n${logs}`,
        { cause: err },
      );
    }
  }

  /** A counter's value in Prometheus text (0 when absent). */
  async function metric(name: string): Promise<number> {
    if (!gateway) throw new Error("no gateway");
    const text = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(`${name} `));
    return line ? Number(line.slice(name.length + 1)) : 0;
  }

  test("requests without a token are refused: 401 missing_token, from Node and from the page", async () => {
    if (!browser || !gateway) throw new Error("chromium or the gateway did not start");
    const res = await fetch(`${gateway.url}/events/demo.ticker`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer realm=/);
    expect(((await res.json()) as { error: string }).error).toBe("missing_token");

    const page = await browser.newPage();
    try {
      await page.goto(`${gateway.url}/?autostart=0`);
      const fromPage = await page.evaluate(async () => {
        const r = await fetch("/events?subject=demo.ticker&subject=demo.chat", {
          headers: { Accept: "text/event-stream" },
        });
        return { status: r.status, body: (await r.json()) as { error: string } };
      });
      expect(fromPage).toEqual({
        status: 401,
        body: expect.objectContaining({ error: "missing_token" }),
      });
      // The demo page itself subscribes with a token it fetched: the token endpoint is there.
      const token = await page.evaluate(async () => {
        const r = await fetch("/demo/token?subject=demo.ticker&ttl=3");
        return r.status;
      });
      expect(token).toBe(200);
    } finally {
      await page.close();
    }
  });

  test("a token expiring mid-stream in Chromium: the page renews it and resumes with no loss", async () => {
    if (!browser || !gateway) throw new Error("chromium or the gateway did not start");
    const expiredBefore = await metric("sse_auth_tokens_expired_total");

    // History before the page opens: it asks for the last 5 of demo.ticker and demo.chat, so
    // it is positioned from its first event on and must then see every message published.
    const published: number[] = [];
    for (let i = 0; i < 3; i++) published.push(await js.publish("demo.chat", `before ${i}`));

    const page = await browser.newPage();
    try {
      await page.goto(`${gateway.url}/?ttl=${TTL_S}`);
      await waitForId(page, published[published.length - 1] as number);

      // One message every ~100 ms for ~10 s (bounded in count and time), on both subjects:
      // three or more token lifetimes, so the stream is cut and resumed several times while
      // messages keep arriving.
      const t0 = Date.now();
      for (let i = 0; i < MAX_PUBLISHED && Date.now() - t0 < PUBLISH_FOR_MS; i++) {
        const subject = i % 2 === 0 ? "demo.ticker" : "demo.chat";
        published.push(await js.publish(subject, `live ${i}`));
        await sleep(PUBLISH_EVERY_MS);
      }
      const lastId = published[published.length - 1] as number;
      await waitForId(page, lastId);
      // Give a duplicate, had one been sent, time to show up.
      await sleep(500);

      const events = await received(page);
      const renewals = await page.evaluate(() => (globalThis as unknown as DemoPage).renewals ?? 0);
      expect(renewals).toBeGreaterThanOrEqual(2);

      const expired = events.filter((e) => e.type === "gateway.token_expired");
      expect(expired.length).toBeGreaterThanOrEqual(2);
      // One renewal per notice, and each notice names the last event the page had.
      expect(renewals).toBe(expired.length);
      for (const e of expired) {
        const at = events.indexOf(e);
        const before = events.slice(0, at).filter((x) => x.type === "message");
        const lastBefore = before[before.length - 1];
        const data = JSON.parse(e.data) as { lastEventId: number };
        expect(data.lastEventId).toBe(Number(lastBefore?.id ?? 0));
        expect(e.id).toBe(String(data.lastEventId));
      }
      // No other notice (gap, reset) along the way.
      expect(
        events.filter((e) => e.type !== "message" && e.type !== "gateway.token_expired"),
      ).toEqual([]);

      // Every published message from the first one received on, once each, in order.
      const ids = events.filter((e) => e.type === "message").map((e) => Number(e.id));
      const from = published.indexOf(ids[0] as number);
      expect(from).toBe(0);
      expect(ids).toEqual(published.slice(from));
      for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1] as number);
      expect(new Set(ids).size).toBe(ids.length);
      // The payloads are the messages, not just their ids.
      expect(events.find((e) => e.id === String(lastId) && e.type === "message")?.data).toMatch(
        /^live \d+$/,
      );

      expect(
        (await metric("sse_auth_tokens_expired_total")) - expiredBefore,
      ).toBeGreaterThanOrEqual(2);
    } finally {
      await page.close();
    }
  });
});
