/**
 * Bad input gets a 4xx with a JSON body `{ error, message }` before any stream starts, never a
 * 5xx, and the gateway keeps serving. Real nats-server, real HTTP.
 */
import { startNats, type NatsHandle } from "../support/nats";
import { startTestGateway, type TestGateway } from "../support/inProcessGateway";
import { connectJetStream, type TestJetStream } from "../support/jetstream";
import { rawGet } from "../support/sse-client";
import { errorBody, openRecorder, Tracker, unique, waitForId } from "./contract-helpers";
import { parseRaw, rawExchange as rawExchangeWith } from "../support/rawHttp";

let nats: NatsHandle;
let js: TestJetStream;
let gw: TestGateway;
/** A subject some stream captures, so only the part under test is wrong. */
let good: string;
let goodPrefix: string;
const tracker = new Tracker();
/** Every status seen in this file, to check that none was a 5xx. */
const statuses: number[] = [];

beforeAll(async () => {
  nats = await startNats();
  js = await connectJetStream(nats.url);
  gw = await startTestGateway(nats.url, { MAX_SUBJECTS: "4" });
  const { stream, prefix } = unique("err");
  await js.addStream(stream, [`${prefix}.>`]);
  goodPrefix = prefix;
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
async function expectError(
  path: string,
  status: number,
  code: string,
  headers?: Record<string, string>,
): Promise<{ error: string; message: string }> {
  const res = await rawGet(`${gw.url}${path}`, headers);
  statuses.push(res.status);
  expect({ path, status: res.status }).toEqual({ path, status });
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  const body = errorBody(res.body);
  expect(body.error).toBe(code);
  expect(body.message.length).toBeGreaterThan(0);
  return body;
}

/** Sends raw bytes to the gateway and reads until it closes (see support/rawHttp.ts). */
const rawExchange = (request: Buffer | string, timeoutMs = 5_000): Promise<string> =>
  rawExchangeWith(gw.url, request, { timeoutMs });

describe("malformed subjects", () => {
  it.each([
    ["a double dot", "/events/PREFIX..bar"],
    ["a leading dot", "/events/.PREFIX.x"],
    ["a trailing dot", "/events/PREFIX.x."],
    ["`>` before the last token", "/events/PREFIX.%3E.b"],
    ["a wildcard inside a token", "/events/PREFIX.a*"],
    ["a space", "/events/PREFIX.a%20b"],
    ["a tab", "/events/PREFIX.a%09b"],
    ["a control character", "/events/PREFIX.a%01b"],
    ["a bad query subject", "/events?subject=PREFIX..x"],
    ["an empty query subject", "/events?subject="],
  ])("subjects - %s is refused with 400 malformed_subject", async (_label, path) => {
    await expectError(path.replace("PREFIX", goodPrefix), 400, "malformed_subject");
  });

  it("subjects - a subject longer than MAX_SUBJECT_LENGTH is refused with 400 malformed_subject", async () => {
    await expectError(`/events/${goodPrefix}.${"x".repeat(300)}`, 400, "malformed_subject");
  });

  it("subjects - no subject at all is refused with 400 no_subject", async () => {
    await expectError("/events", 400, "no_subject");
  });

  it("subjects - /events/ with an empty path subject is refused with 400 no_subject", async () => {
    await expectError("/events/", 400, "no_subject");
    const rec = await openRecorder(tracker, `${gw.url}/events/?subject=${good}`);
    const seq = await js.publish(good, "query subject after /events/");
    await waitForId(rec, seq);
  });

  it("subjects - more than MAX_SUBJECTS subjects are refused with 400 too_many_subjects", async () => {
    const query = ["a", "b", "c", "d", "e"].map((s) => `subject=${goodPrefix}.${s}`).join("&");
    await expectError(`/events?${query}`, 400, "too_many_subjects");
  });

  it("subjects - repeating one subject does not count against the limit", async () => {
    const query = Array.from({ length: 8 }, () => `subject=${good}`).join("&");
    const rec = await openRecorder(tracker, `${gw.url}/events?${query}`);
    const seq = await js.publish(good, "once");
    await waitForId(rec, seq);
    expect(rec.events.map((e) => e.id)).toEqual([String(seq)]);
  });

  it.each([
    ["a wildcard and a subject it matches", ["PREFIX.*", "PREFIX.a"]],
    ["`>` and a deeper subject", ["PREFIX.%3E", "PREFIX.a.b"]],
    ["two wildcards that meet", ["PREFIX.*.x", "PREFIX.a.*"]],
  ])(
    "subjects - %s overlap and are refused with 400 overlapping_subjects",
    async (_l, subjects) => {
      const query = subjects.map((s) => `subject=${s.replace("PREFIX", goodPrefix)}`).join("&");
      await expectError(`/events?${query}`, 400, "overlapping_subjects");
    },
  );
});

describe("forbidden and unknown subjects", () => {
  it.each([
    "$SYS.x",
    "$SYS.%3E",
    "$JS.API.x",
    "$JS.API.STREAM.INFO.X",
    "$JS.%3E",
    "$KV.bucket.key",
    "_INBOX.x",
    "_INBOX.%3E",
  ])("subjects - the system subject %s is refused with 403 subject_forbidden", async (subject) => {
    await expectError(`/events/${subject}`, 403, "subject_forbidden");
  });

  it("subjects - a system subject among good ones is refused with 403 subject_forbidden", async () => {
    await expectError(`/events?subject=${good}&subject=_INBOX.abc`, 403, "subject_forbidden");
  });

  it("subjects - a subject no stream captures is refused with 404 stream_not_found", async () => {
    const body = await expectError(`/events/nostream${Date.now()}.x`, 404, "stream_not_found");
    expect(body.message).toContain("nostream");
  });

  it("subjects - a stream created after a 404 is found shortly after", async () => {
    const { stream, prefix } = unique("late");
    await expectError(`/events/${prefix}.x`, 404, "stream_not_found");
    await js.addStream(stream, [`${prefix}.>`]);
    // Failed lookups are remembered for about a second; poll a bounded number of times.
    let status = 0;
    for (let i = 0; i < 40 && status !== 200; i++) {
      const res = await fetch(`${gw.url}/events/${prefix}.x`, {
        headers: { Accept: "text/event-stream" },
        signal: AbortSignal.timeout(5_000),
      });
      status = res.status;
      await res.body?.cancel();
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
  });

  it("subjects - a wildcard wider than its stream's subjects is refused with 400", async () => {
    const { stream, prefix } = unique("narrow");
    await js.addStream(stream, [`${prefix}.only.*`]);
    await expectError(`/events/${prefix}.%3E`, 400, "subjects_span_streams");
  });
});

describe("what refusals tell the public", () => {
  it("subjects - a refusal names only the request's own subjects, never other streams or their subjects", async () => {
    const { stream: a, prefix } = unique("leak");
    const b = `${a}_OTHER`;
    // One stream also captures a subject nobody asked about; another one sits beside it.
    await js.addStream(a, [`${prefix}.a.>`, `${prefix}.internal.payroll`]);
    await js.addStream(b, [`${prefix}.b.>`]);
    const cases: [string, number, string][] = [
      // two subjects in two streams
      [`/events?subject=${prefix}.a.1&subject=${prefix}.b.1`, 400, "subjects_span_streams"],
      // a wildcard two streams share
      [`/events/${prefix}.*.1`, 400, "subjects_span_streams"],
      // a wildcard only partly captured by one stream
      [`/events/${prefix}.internal.*`, 400, "subjects_span_streams"],
    ];
    for (const [path, status, code] of cases) {
      const { message } = await expectError(path, status, code);
      expect(message).toContain(prefix); // it names what was asked
      for (const secret of [a, b, "payroll", `${prefix}.a.>`, `${prefix}.b.>`])
        expect(`${path}: ${message}`).not.toContain(secret);
    }
  });
});

describe("malformed cursors", () => {
  it.each(["abc", "-1", "1.5", "1e3", "0x10", "01", "99999999999999999999", "12abc"])(
    "cursors - the Last-Event-ID %p is refused with 400 malformed_cursor",
    async (raw) => {
      await expectError(`/events/${good}`, 400, "malformed_cursor", { "Last-Event-ID": raw });
    },
  );

  it.each(["abc", "-1", "1.5", "99999999999999999999"])(
    "cursors - the lastEventId query parameter %p is refused with 400 malformed_cursor",
    async (raw) => {
      await expectError(
        `/events/${good}?lastEventId=${encodeURIComponent(raw)}`,
        400,
        "malformed_cursor",
      );
    },
  );

  it("cursors - lastEventId given twice is refused with 400 malformed_cursor", async () => {
    await expectError(`/events/${good}?lastEventId=1&lastEventId=2`, 400, "malformed_cursor");
  });

  it("cursors - an empty Last-Event-ID means no cursor (a fresh connection)", async () => {
    const rec = await openRecorder(tracker, `${gw.url}/events/${good}`, {
      headers: { "Last-Event-ID": "" },
    });
    const seq = await js.publish(good, "fresh");
    await waitForId(rec, seq);
    expect(rec.events.map((e) => e.id)).toEqual([String(seq)]);
  });
});

describe("malformed requests", () => {
  it("requests - bad percent-encoding in the path is refused with 400 JSON", async () => {
    await expectError("/events/%E0%A4%A", 400, "malformed_request");
  });

  it("requests - bad percent-encoding in the query is not a 5xx", async () => {
    const res = await rawGet(`${gw.url}/events?subject=%E0%A4%A`);
    statuses.push(res.status);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(typeof errorBody(res.body).error).toBe("string");
  });

  it("requests - headers larger than HTTP_MAX_HEADER_BYTES get 431 with a JSON body", async () => {
    const raw = await rawExchange(
      `GET /events/${good} HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(17 * 1024)}\r\n\r\n`,
    );
    const res = parseRaw(raw);
    statuses.push(res.status);
    expect(res.status).toBe(431);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(errorBody(res.body).error).toBe("headers_too_large");
  });

  it("requests - headers larger than HTTP_MAX_HEADER_BYTES through fetch also get 431", async () => {
    const res = await rawGet(`${gw.url}/events/${good}`, { "X-Big": "b".repeat(17 * 1024) });
    statuses.push(res.status);
    expect(res.status).toBe(431);
    expect(errorBody(res.body).error).toBe("headers_too_large");
  });

  it("requests - a request Node cannot parse gets 400 JSON", async () => {
    const res = parseRaw(await rawExchange("GET /livez HTTP/1.1\r\nHost x\r\n\r\n"));
    statuses.push(res.status);
    expect(res.status).toBe(400);
    expect(errorBody(res.body).error).toBe("malformed_request");
  });

  it("requests - an unknown route is 404 JSON", async () => {
    await expectError("/nope", 404, "not_found");
    await expectError("/eventsx", 404, "not_found");
  });

  it("requests - a subject spread over several path segments is refused with 400 JSON", async () => {
    await expectError(`/events/${goodPrefix}/ok`, 400, "malformed_request");
  });

  it("requests - a method other than GET on /events is 405 JSON", async () => {
    const res = await fetch(`${gw.url}/events/${good}`, {
      method: "POST",
      body: "x",
      signal: AbortSignal.timeout(5_000),
    });
    statuses.push(res.status);
    expect(res.status).toBe(405);
    expect(errorBody(await res.text()).error).toBe("method_not_allowed");
  });
});

describe("after all that", () => {
  it("errors - no bad request got a 5xx, and the gateway still serves", async () => {
    // A burst of bad requests of every kind at once, on top of those of the tests above.
    const bad = [
      `/events/${goodPrefix}..x`,
      "/events/$SYS.x",
      "/events/%E0%A4%A",
      `/events/nostream${Date.now()}.y`,
      `/events/${good}?last=0`,
      `/events?subject=${goodPrefix}.*&subject=${good}`,
    ];
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => bad.map((p) => rawGet(`${gw.url}${p}`))).flat(),
    );
    for (const a of answers) statuses.push(a.status);
    expect(statuses.length).toBeGreaterThanOrEqual(answers.length);
    expect(statuses.filter((s) => s < 400 || s >= 500)).toEqual([]);
    const live = await rawGet(`${gw.adminUrl}/livez`);
    expect(live.status).toBe(200);
    const ready = await rawGet(`${gw.adminUrl}/readyz`);
    expect(ready.status).toBe(200);
    const rec = await openRecorder(tracker, `${gw.url}/events/${good}`);
    const seq = await js.publish(good, "still here");
    await waitForId(rec, seq);
    expect(rec.events.map((e) => e.data)).toEqual(["still here"]);
  });
});
