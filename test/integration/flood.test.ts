/**
 * Floods of sockets that never finish a request (slowloris), against a real nats-server and the
 * real gateway over real TCP. Every socket is a file descriptor: unbounded, they exhaust the
 * process's descriptors and then every new connection is reset, the admin port's probes
 * included, and the kubelet restarts the pod. Bounded in count and time: a few thousand sockets
 * at most, each test well under a minute.
 */
import net from "node:net";
import { startGatewayProcess, type GatewayProcess } from "../support/gateway";
import { startTestGateway, type TestGateway } from "../support/inProcessGateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { startNats, type NatsHandle } from "../support/nats";
import { parseRaw, rawExchange } from "../support/rawHttp";
import { rawGet, SseRecorder } from "../support/sse-client";
import {
  errorBody,
  metricValue,
  sleep,
  Tracker,
  unique,
  waitForId,
  waitUntil,
} from "./contract-helpers";

jest.setTimeout(120_000);

let nats: NatsHandle;
let js: TestJetStream;
let subject: string;
const tracker = new Tracker();

beforeAll(async () => {
  nats = await startNats();
  js = await connectJetStream(nats.url);
  const { stream, prefix } = unique("flood");
  await js.addStream(stream, [`${prefix}.>`]);
  subject = `${prefix}.t`;
});

afterEach(() => tracker.closeAll());

afterAll(async () => {
  await tracker.closeAll();
  await js?.close();
  await nats?.close();
});

/** One attacking socket: what it was sent back, and whether the server closed it. */
interface Stalled {
  socket: net.Socket;
  received: string;
  connected: boolean;
  closed: boolean;
}

/**
 * Opens `perAddress` sockets from each of `addresses` (127.x.y.z: every one is the loopback)
 * that send the start of a request and never finish it. Resolves once every socket has
 * connected or been closed. Bounded: the caller's counts, batches of 100.
 */
async function slowloris(url: string, addresses: string[], perAddress: number): Promise<Stalled[]> {
  const { hostname, port } = new URL(url);
  const all: Stalled[] = [];
  const open = (localAddress: string) =>
    new Promise<void>((resolve) => {
      const socket = net.connect({ port: Number(port), host: hostname, localAddress });
      const s: Stalled = { socket, received: "", connected: false, closed: false };
      all.push(s);
      socket.on("connect", () => {
        s.connected = true;
        socket.write(`GET /events/${subject} HTTP/1.1\r\nHost: x\r\nX-Slow: `);
        resolve();
      });
      socket.on("data", (c: Buffer) => (s.received += c.toString("utf8")));
      socket.on("error", () => undefined); // a reset is one of the expected endings
      socket.on("close", () => {
        s.closed = true;
        resolve();
      });
    });
  const jobs = addresses.flatMap((a) => Array.from({ length: perAddress }, () => a));
  for (let i = 0; i < jobs.length; i += 100)
    await Promise.all(jobs.slice(i, i + 100).map((a) => open(a)));
  return all;
}

/**
 * Waits until the server has decided about every socket (held, or refused and seen closed by
 * the client): a client's connect completes in the kernel before the server accepts.
 */
async function settled(stalled: Stalled[], metrics: () => Promise<string>): Promise<Stalled[]> {
  await waitUntil(
    async () => {
      const m = await metrics();
      const refused = metricValue(m, "sse_http_sockets_refused_total");
      const open = metricValue(m, "sse_http_sockets");
      return (
        open + refused === stalled.length && stalled.filter((s) => s.closed).length === refused
      );
    },
    "every stalled socket to be held or refused",
    20_000,
    50,
  );
  return stalled.filter((s) => !s.closed);
}

/**
 * Probes `/livez` and `/readyz` on the admin port every 100 ms, each on a new connection (as the
 * kubelet does), until stopped; returns every answer that was not a 200.
 */
function probeContinuously(adminUrl: string): {
  stop: () => Promise<string[]>;
  count: () => number;
} {
  const failures: string[] = [];
  let probes = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const path of ["/livez", "/readyz"]) {
        try {
          const raw = await rawExchange(
            adminUrl,
            `GET ${path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n`,
            { timeoutMs: 2_000 },
          );
          const status = parseRaw(raw).status;
          if (status !== 200) failures.push(`${path}: ${status}`);
        } catch (err) {
          failures.push(`${path}: ${err instanceof Error ? err.message : String(err)}`);
        }
        probes++;
      }
      await sleep(100);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return failures;
    },
    count: () => probes,
  };
}

const range = (from: number, n: number, a = "127.0.1") =>
  Array.from({ length: n }, (_, i) => `${a}.${from + i}`);

describe("a flood of sockets that never finish their headers", () => {
  it("flood - with the default bounds the probes answer 200 throughout, the headers timeout answers the stalled sockets 408 and honest clients are served", async () => {
    let gw: GatewayProcess | undefined;
    try {
      // 1,024 descriptors for the whole process; 1,500 stalled sockets from 12 addresses. Without
      // a socket bound the descriptors run out and the admin port resets every probe.
      gw = await startGatewayProcess(
        {
          NATS_URL: nats.url,
          MAX_CONNECTIONS: "200",
          MAX_CONNECTIONS_PER_CLIENT: "50",
          CLIENT_LIMIT_BY: "address",
          HTTP_HEADERS_TIMEOUT_MS: "3000",
          HTTP_REQUEST_TIMEOUT_MS: "3000",
          SHED_RETRY_MS: "500",
        },
        { maxOpenFiles: 1_024 },
      );
      const g = gw;
      await waitUntil(
        async () => (await rawGet(`${g.adminUrl}/readyz`)).status === 200,
        "the gateway to be ready",
      );
      const scrape = async () => (await rawGet(`${g.adminUrl}/metrics`)).body;
      // The bound in force: 90 % of the descriptors, below MAX_CONNECTIONS + 1,024.
      expect(metricValue(await scrape(), "sse_http_sockets_max")).toBe(921);

      const probes = probeContinuously(g.adminUrl);
      const stalled = await slowloris(g.url, range(10, 12), 125);
      expect(stalled).toHaveLength(1_500);
      const held = await settled(stalled, scrape);
      const during = await scrape();
      // Held: what the bounds allow (per address: 50 + 64; in total: 921), not a socket more.
      expect(held.length).toBeLessThanOrEqual(921);
      expect(held.length).toBeGreaterThan(0);
      expect(metricValue(during, "sse_http_sockets")).toBeLessThanOrEqual(921);
      expect(metricValue(during, "sse_http_sockets_refused_total")).toBe(1_500 - held.length);

      // An honest browser arrives in the middle of it: turned away (a network error, which
      // EventSource retries) while the bound is full, served once the stalled sockets are reaped.
      const honest = tracker.add(new SseRecorder(`${g.url}/events/${subject}`));
      await waitUntil(
        () => stalled.every((s) => s.closed),
        "the headers timeout to close every stalled socket",
        30_000,
        100,
      );
      await honest.waitFor(() => honest.opens >= 1, 30_000);
      const seq = await js.publish(subject, "served after the flood");
      await waitForId(honest, seq);

      const failures = await probes.stop();
      expect(probes.count()).toBeGreaterThan(10);
      expect(failures).toEqual([]);

      // Every held socket was answered 408 JSON; every refused one was closed unread, unanswered.
      for (const s of held) {
        const res = parseRaw(s.received);
        expect(res.status).toBe(408);
        expect(errorBody(res.body).error).toBe("request_timeout");
      }
      const refused = stalled.filter((s) => !held.includes(s));
      expect(refused.every((s) => s.received === "")).toBe(true);
      const after = await scrape();
      expect(metricValue(after, "sse_http_errors_total", { code: "request_timeout" })).toBe(
        held.length,
      );
      expect(
        metricValue(after, "sse_http_sockets_refused_total", { reason: "total" }),
      ).toBeGreaterThan(0);
      expect(
        metricValue(after, "sse_http_sockets_refused_total", { reason: "per_client" }),
      ).toBeGreaterThan(0);
    } finally {
      await gw?.stop();
    }
  });

  it("flood - one address holding its share of sockets leaves the rest to everyone else", async () => {
    let g: TestGateway | undefined;
    try {
      g = await startTestGateway(nats.url, {
        MAX_CONNECTIONS: "300",
        MAX_CONNECTIONS_PER_CLIENT: "50",
        CLIENT_LIMIT_BY: "address",
        HTTP_MAX_SOCKETS: "400",
        HTTP_MAX_SOCKETS_PER_CLIENT: "100",
        // Nothing is reaped during this test: only the per-address bound protects the others.
        HTTP_HEADERS_TIMEOUT_MS: "60000",
        HTTP_REQUEST_TIMEOUT_MS: "60000",
      });
      const stalled = await slowloris(g.url, ["127.0.2.50"], 1_000);
      const gm = g;
      const held = await settled(stalled, () => gm.metrics());
      expect(held).toHaveLength(100);
      expect(stalled.filter((s) => s.closed && s.received === "")).toHaveLength(900);
      const m = await g.metrics();
      expect(metricValue(m, "sse_http_sockets_refused_total", { reason: "per_client" })).toBe(900);

      // Another client (127.0.0.1) is served at once, first try, while the flood holds its 100.
      const other = tracker.add(new SseRecorder(`${g.url}/events/${subject}`));
      await other.waitFor(() => other.opens >= 1, 10_000);
      const seq = await js.publish(subject, "not starved");
      await waitForId(other, seq);
      expect(other.errors).toBe(0);
      expect(held.every((s) => !s.closed)).toBe(true);
      expect(metricValue(await g.metrics(), "sse_http_sockets")).toBeGreaterThanOrEqual(101);
      for (const s of held) s.socket.destroy();
    } finally {
      await g?.close();
    }
  });
});
