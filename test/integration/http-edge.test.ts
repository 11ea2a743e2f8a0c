/**
 * The edges of HTTP: query strings at and over their bounds, against a real nats-server and the
 * real gateway over real HTTP (raw sockets where fetch would not send the request). Every
 * answer before a stream starts is a status with a JSON body `{ error, message }`.
 */
import { startNats, type NatsHandle } from "../support/nats";
import { startTestGateway, type TestGateway } from "../support/inProcessGateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { parseRaw, rawExchange } from "../support/rawHttp";
import { rawGet } from "../support/sse-client";
import {
  errorBody,
  metricValue,
  openRecorder,
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
