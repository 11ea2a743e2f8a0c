/**
 * Chromium's own EventSource against the built gateway (DESIGN invariants 5 and 7): the demo
 * page subscribes, the gateway is stopped with SIGTERM, messages are published while no gateway
 * runs, and a new gateway comes up on the same port. The browser must come back by itself with
 * its Last-Event-ID and end up with every message exactly once, in order.
 *
 * Run `npm run build` first. CHROMIUM_PATH overrides /usr/bin/chromium.
 */
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "../support/chromium";
import { startGatewayProcess, type GatewayProcess } from "../support/gateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { startNats, type NatsHandle } from "../support/nats";
import { freePort } from "../support/ports";
import { sleep } from "../support/process";

const WAIT_MS = 30_000;

/** What demo/index.html pushes into `window.received` for every event. */
interface PageEvent {
  id: string;
  type: string;
  data: string;
}

interface DemoPage {
  received: PageEvent[];
}

describe("Chromium's EventSource on the demo page", () => {
  let nats: NatsHandle;
  let js: TestJetStream;
  let browser: Browser | undefined;
  const gateways: GatewayProcess[] = [];

  beforeAll(async () => {
    nats = await startNats();
    js = await connectJetStream(nats.url);
    await js.addStream("DEMO", ["demo.>"]);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await Promise.all(gateways.map((g) => g.stop()));
    await js?.close().catch(() => undefined);
    await nats?.close();
  });

  async function received(page: Page): Promise<PageEvent[]> {
    return page.evaluate(() => (globalThis as unknown as DemoPage).received);
  }

  async function waitForId(page: Page, id: number): Promise<void> {
    try {
      await page.waitForFunction(
        (want) => (globalThis as unknown as DemoPage).received.some((e) => e.id === want),
        String(id),
        { timeout: WAIT_MS * 2, polling: 100 },
      );
    } catch (err) {
      const got = (await received(page).catch(() => [])).map((e) => `${e.type}#${e.id}`);
      throw new Error(`event ${id} never reached the page; it has ${got.join(" ")}`, {
        cause: err,
      });
    }
  }

  test("reconnects by itself to the gateway that replaces a stopped one and receives every message exactly once, in order", async () => {
    if (!browser) throw new Error("chromium did not start");
    // History before the page opens: it asks for the last 5 of demo.ticker and demo.chat.
    const history: number[] = [];
    for (let i = 0; i < 4; i++) {
      history.push(await js.publish("demo.ticker", `tick ${i}`));
      history.push(await js.publish("demo.chat", `hello ${i}`));
    }
    const expected = history.slice(-5);

    const port = await freePort();
    const env = {
      NATS_URL: nats.url,
      DEMO: "true",
      DRAIN_WINDOW_MS: "200",
      SHED_RETRY_MS: "300",
      RETRY_MS: "300",
      HEARTBEAT_MS: "1000",
    };
    const a = await startGatewayProcess(env, { port });
    gateways.push(a);

    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${port}/`);
    await waitForId(page, expected[expected.length - 1] as number);

    for (let i = 0; i < 5; i++) expected.push(await js.publish("demo.chat", `while A runs ${i}`));
    await waitForId(page, expected[expected.length - 1] as number);

    a.kill("SIGTERM");
    expect(await a.waitForExit(WAIT_MS)).toBe(0);

    // Nobody serves the page now; its EventSource keeps retrying.
    for (let i = 0; i < 5; i++) {
      expected.push(await js.publish(i % 2 === 0 ? "demo.chat" : "demo.ticker", `no gateway ${i}`));
    }
    await sleep(500);

    const b = await startGatewayProcess(env, { port });
    gateways.push(b);
    for (let i = 0; i < 3; i++) expected.push(await js.publish("demo.chat", `B runs ${i}`));
    await waitForId(page, expected[expected.length - 1] as number);
    // Give a duplicate, had one been sent, time to show up.
    await sleep(500);

    const events = await received(page);
    const ids = events.filter((e) => !e.type.startsWith("gateway.")).map((e) => Number(e.id));
    expect(ids).toEqual(expected);
    for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1] as number);
    // The payloads are the messages, not just their ids.
    expect(events.find((e) => e.id === String(expected[expected.length - 1]))?.data).toBe(
      "B runs 2",
    );
    await page.close();
  });
});
