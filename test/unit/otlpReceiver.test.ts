import { spawn } from "node:child_process";
import http from "node:http";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { SpanKind, SpanStatusCode, type Attributes, type HrTime } from "@opentelemetry/api";
import { ExportResultCode } from "@opentelemetry/core";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import {
  InMemorySpanExporter,
  SimpleSpanProcessor,
  TracerProvider,
  type ReadableSpan,
} from "@opentelemetry/sdk-trace";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { decodeTraceRequest, ProtoError } from "../support/otlpProto";
import { startOtlpReceiver, type OtlpReceiver } from "../support/otlpReceiver";

// W3C "sampled", plus the OTLP span-flags bits that say whether the parent was remote.
const SAMPLED_LOCAL = 0x1 | 0x100;
const SAMPLED_REMOTE = 0x1 | 0x100 | 0x200;
const REMOTE = {
  traceId: "0af7651916cd43dd8448eb211c80319c",
  spanId: "b7ad6b7169203331",
  traceState: "vendor=abc,other=1",
};

let receiver: OtlpReceiver;
beforeEach(async () => {
  receiver = await startOtlpReceiver();
});
afterEach(() => receiver.close());

/** A span for the exporting child to make; `parent` and links name earlier spans by index. */
interface SpanSpec {
  name: string;
  kind?: SpanKind;
  parent?: number | "remote";
  startTime?: HrTime;
  endTime?: HrTime;
  attributes?: Attributes;
  links?: { to: number | "remote"; attributes?: Attributes }[];
  events?: { name: string; attributes?: Attributes; time: HrTime }[];
  status?: { code: SpanStatusCode; message?: string };
}

/**
 * A run of the real `@opentelemetry/exporter-trace-otlp-proto` exporter in a child process: its
 * transport loads node:http with a dynamic import(), which Jest's VM refuses without
 * --experimental-vm-modules (and a separate process is how a gateway will export anyway).
 * "provider" ends the spans into a BatchSpanProcessor and force-flushes it; "export" hands them
 * to `exporter.export` directly, whose result the provider would only log.
 */
interface ExportJob {
  via: "provider" | "export";
  exporter?: { compression?: "gzip"; timeoutMillis?: number };
  resource?: Attributes;
  spans: SpanSpec[];
}

/** The ids the child's spans got, in spec order, and the direct export's result. */
interface ExportOutcome {
  ids: { traceId: string; spanId: string }[];
  result?: { code: ExportResultCode; error?: string };
}

const CHILD = `
const { context, trace } = require("@opentelemetry/api");
const { TraceState } = require("@opentelemetry/core");
const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-proto");
const { resourceFromAttributes } = require("@opentelemetry/resources");
const sdk = require("@opentelemetry/sdk-trace");

async function main(job) {
  const exporter = new OTLPTraceExporter({ url: job.url, ...job.exporter });
  const memory = new sdk.InMemorySpanExporter();
  const processor = job.via === "provider"
    ? new sdk.BatchSpanProcessor({ exporter })
    : new sdk.SimpleSpanProcessor({ exporter: memory });
  const provider = new sdk.TracerProvider({
    resource: resourceFromAttributes(job.resource ?? { "service.name": "child" }),
    spanProcessors: [processor],
  });
  const tracer = provider.getTracer("otlp-scope", "1.2.3", { schemaUrl: "https://x/schemas/1" });
  const remote = { ...job.remote, traceFlags: 1, isRemote: true,
    traceState: new TraceState(job.remote.traceState) };
  const made = [];
  const ctx = (ref) => (ref === "remote" ? remote : made[ref].spanContext());
  for (const s of job.spans) {
    const parent = s.parent === undefined ? context.active()
      : trace.setSpanContext(context.active(), ctx(s.parent));
    const links = (s.links ?? []).map((l) => ({ context: ctx(l.to), attributes: l.attributes }));
    const span = tracer.startSpan(s.name,
      { kind: s.kind, startTime: s.startTime, attributes: s.attributes, links }, parent);
    for (const e of s.events ?? []) span.addEvent(e.name, e.attributes, e.time);
    if (s.status) span.setStatus(s.status);
    made.push(span);
  }
  job.spans.forEach((s, i) => made[i].end(s.endTime));
  let result;
  if (job.via === "provider") await provider.forceFlush();
  else result = await new Promise((resolve) => exporter.export(memory.getFinishedSpans(), resolve));
  await provider.shutdown();
  await exporter.shutdown();
  const ids = made.map((m) => ({ traceId: m.spanContext().traceId, spanId: m.spanContext().spanId }));
  const error = result?.error ? String(result.error.message) : undefined;
  return { ids, result: result && { code: result.code, error } };
}

let input = "";
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => main(JSON.parse(input)).then(
  (out) => { process.stdout.write(JSON.stringify(out)); process.exit(0); },
  (err) => { console.error(err); process.exit(1); },
));
`;

/** Runs `job` in a child node process (see {@link ExportJob}) against the receiver. */
function exportFromChild(job: ExportJob): Promise<ExportOutcome> {
  const child = spawn(process.execPath, ["-e", CHILD], {
    cwd: path.resolve(__dirname, "../.."), // where the OpenTelemetry packages resolve from
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  child.stdin.end(JSON.stringify({ ...job, url: receiver.tracesUrl, remote: REMOTE }));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve(JSON.parse(out) as ExportOutcome)
        : reject(new Error(`exporting child exited ${code}: ${err}`)),
    );
  });
}

/** Ended spans from an in-memory pipeline (serialization needs no network, so it runs here). */
function endedSpans(...names: string[]): ReadableSpan[] {
  const memory = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": "direct" }),
    spanProcessors: [new SimpleSpanProcessor({ exporter: memory })],
  });
  for (const name of names) provider.getTracer("direct").startSpan(name).end();
  return memory.getFinishedSpans();
}

/** The exporter's request body for `spans`, as the real serializer writes it. */
function serialize(spans: ReadableSpan[]): Uint8Array {
  const body = ProtobufTraceSerializer.serializeRequest(spans);
  if (!body) throw new Error("the serializer produced nothing");
  return body;
}

function post(path: string, body: Uint8Array | string, headers: Record<string, string>) {
  return fetch(receiver.url + path, { method: "POST", body, headers });
}

const plain = (...names: string[]): SpanSpec[] => names.map((name) => ({ name }));

describe("the OTLP receiver, fed by the real OTLP/proto exporter", () => {
  it("decodes every span field exactly as the SDK created it", async () => {
    const serverAttributes = {
      "http.route": "/events",
      "retry.count": 3,
      "retry.negative": -42,
      "big.int": 2 ** 60,
      ratio: 0.25,
      cached: false,
      subjects: ["a.b", "c.d"],
      "with.gap": ["x", null],
    };
    const { ids } = await exportFromChild({
      via: "provider",
      resource: { "service.name": "otlp-test", "deploy.generation": 7 },
      spans: [
        { name: "other-trace" },
        {
          name: "GET /events",
          kind: SpanKind.SERVER,
          startTime: [1_700_000_000, 123_456_789],
          endTime: [1_700_000_001, 999_999_999],
          attributes: serverAttributes,
          links: [
            { to: 0, attributes: { "link.reason": "replay", "link.n": 2 } },
            { to: "remote" },
          ],
          events: [
            {
              name: "replay.start",
              attributes: { "replay.from": 42, "replay.subject": "a.b" },
              time: [1_700_000_000, 5],
            },
          ],
        },
        {
          name: "deliver",
          kind: SpanKind.CONSUMER,
          parent: 1,
          status: { code: SpanStatusCode.ERROR, message: "consumer gone" },
        },
        {
          name: "publish",
          kind: SpanKind.PRODUCER,
          parent: "remote",
          status: { code: SpanStatusCode.OK },
        },
      ],
    });
    const [other, server, consumer, producer] = ids;
    if (!other || !server || !consumer || !producer) throw new Error(`ids: ${JSON.stringify(ids)}`);

    const spans = await receiver.waitFor((s) => s.length >= 4);
    expect(receiver.errors).toEqual([]);
    expect(spans.map((s) => s.name).sort()).toEqual([
      "GET /events",
      "deliver",
      "other-trace",
      "publish",
    ]);
    const byName = (name: string) => spans.find((s) => s.name === name);
    const common = {
      resource: { "service.name": "otlp-test", "deploy.generation": 7 },
      scope: { name: "otlp-scope", version: "1.2.3" },
      droppedAttributesCount: 0,
      droppedEventsCount: 0,
      droppedLinksCount: 0,
    };

    expect(byName("GET /events")).toEqual({
      ...common,
      ...server,
      parentSpanId: "",
      traceState: "",
      flags: SAMPLED_LOCAL,
      name: "GET /events",
      kind: "server",
      startTimeUnixNano: 1_700_000_000_123_456_789n,
      endTimeUnixNano: 1_700_000_001_999_999_999n,
      attributes: serverAttributes,
      events: [
        {
          name: "replay.start",
          timeUnixNano: 1_700_000_000_000_000_005n,
          attributes: { "replay.from": 42, "replay.subject": "a.b" },
        },
      ],
      links: [
        {
          ...other,
          traceState: "",
          attributes: { "link.reason": "replay", "link.n": 2 },
          flags: SAMPLED_LOCAL,
        },
        { ...REMOTE, attributes: {}, flags: SAMPLED_REMOTE },
      ],
      status: { code: "unset", message: "" },
    });
    expect(byName("deliver")).toMatchObject({
      ...consumer,
      parentSpanId: server.spanId,
      kind: "consumer",
      status: { code: "error", message: "consumer gone" },
      attributes: {},
      events: [],
      links: [],
    });
    expect(consumer.traceId).toBe(server.traceId);
    expect(byName("publish")).toMatchObject({
      ...producer,
      traceId: REMOTE.traceId,
      parentSpanId: REMOTE.spanId,
      traceState: REMOTE.traceState,
      flags: SAMPLED_REMOTE,
      kind: "producer",
      status: { code: "ok", message: "" },
    });
    expect(byName("other-trace")).toMatchObject({ ...other, parentSpanId: "", kind: "internal" });
    expect(other.traceId).not.toBe(server.traceId);
  });

  it("decodes gzip bodies, as the exporter's compression option sends them", async () => {
    const { result } = await exportFromChild({
      via: "export",
      exporter: { compression: "gzip" },
      spans: plain("zipped"),
    });
    expect(result).toEqual({ code: ExportResultCode.SUCCESS });
    expect(receiver.spans.map((s) => s.name)).toEqual(["zipped"]);

    // The same kind of bytes by hand: gunzipped because of the header, refused without it.
    const zipped = gzipSync(serialize(endedSpans("by-hand")));
    const type = { "content-type": "application/x-protobuf" };
    expect((await post("/v1/traces", zipped, { ...type, "content-encoding": "gzip" })).status).toBe(
      200,
    );
    expect(receiver.spans.map((s) => s.name)).toEqual(["zipped", "by-hand"]);
    expect((await post("/v1/traces", zipped, type)).status).toBe(400);
    expect(receiver.errors).toEqual([expect.stringMatching(/^POST \/v1\/traces: 400 /)]);
  });
});

describe("the OTLP receiver's answers", () => {
  it("is an empty protobuf response with status 200", async () => {
    const body = serialize(endedSpans("plain"));
    const res = await post("/v1/traces", body, { "content-type": "application/x-protobuf" });
    expect([
      res.status,
      res.headers.get("content-type"),
      (await res.arrayBuffer()).byteLength,
    ]).toEqual([200, "application/x-protobuf", 0]);
    expect(receiver.requests).toBe(1);
    expect(receiver.spans.map((s) => [s.name, s.resource["service.name"]])).toEqual([
      ["plain", "direct"],
    ]);
  });

  it("are 400 for a body that is not an ExportTraceServiceRequest, and recorded", async () => {
    const res = await post("/v1/traces", "this is not protobuf", {
      "content-type": "application/x-protobuf",
    });
    expect(res.status).toBe(400);
    expect(receiver.errors).toEqual([expect.stringMatching(/^POST \/v1\/traces: 400 .*end-group/)]);
    expect(receiver.spans).toEqual([]);
  });

  it("are 404, 405 and 415 for the wrong path, method and media type, all recorded", async () => {
    const proto = { "content-type": "application/x-protobuf" };
    expect((await post("/v1/metrics", "", proto)).status).toBe(404);
    expect((await fetch(receiver.tracesUrl)).status).toBe(405);
    expect((await post("/v1/traces", "{}", { "content-type": "application/json" })).status).toBe(
      415,
    );
    expect((await post("/v1/traces", "", { ...proto, "content-encoding": "br" })).status).toBe(415);
    expect(receiver.errors.map((e) => e.split(":")[1]?.trim().slice(0, 3))).toEqual([
      "404",
      "405",
      "415",
      "415",
    ]);
  });

  it("are 503 in fail mode, which the exporter reports as a failed export", async () => {
    receiver.setMode("fail");
    const res = await post("/v1/traces", "", { "content-type": "application/x-protobuf" });
    expect(res.status).toBe(503);
    const refused = await exportFromChild({
      via: "export",
      exporter: { timeoutMillis: 500 },
      spans: plain("refused"),
    });
    expect(refused.result?.code).toBe(ExportResultCode.FAILED);
    expect(receiver.spans).toEqual([]);
    expect(receiver.errors).toEqual([]); // refusing on purpose is not a malformed request

    receiver.setMode("ok");
    const accepted = await exportFromChild({ via: "export", spans: plain("accepted") });
    expect(accepted.result).toEqual({ code: ExportResultCode.SUCCESS });
    expect(receiver.spans.map((s) => s.name)).toEqual(["accepted"]);
  });

  it("never come in hang mode: the exporter times out, and close() ends the hung socket", async () => {
    receiver.setMode("hang");
    const hung = await exportFromChild({
      via: "export",
      exporter: { timeoutMillis: 300 },
      spans: plain("hung"),
    });
    expect(hung.result).toEqual({ code: ExportResultCode.FAILED, error: "Request timed out" });
    expect(receiver.requests).toBeGreaterThanOrEqual(1);
    expect(receiver.spans).toEqual([]);

    // A plain client hears nothing until close(), which destroys the connection.
    const outcome = new Promise<string>((resolve) => {
      const req = http.request(receiver.tracesUrl, { method: "POST" }, (res) =>
        resolve(`answered ${res.statusCode}`),
      );
      req.on("error", (err) => resolve(`error ${err.message}`));
      req.end("x");
    });
    const early = await Promise.race([
      outcome,
      new Promise((r) => setTimeout(() => r("silent"), 300)),
    ]);
    expect(early).toBe("silent");
    // Bounded: were the hung socket left open, close() would wait for it forever.
    const closed = receiver.close().then(() => "closed");
    const late = new Promise((r) => setTimeout(() => r("close() still waiting"), 2_000));
    expect(await Promise.race([closed, late])).toBe("closed");
    expect(await outcome).toMatch(/^error (socket hang up|.*ECONNRESET)/);
  });
});

describe("the OTLP receiver's waitFor", () => {
  it("rejects on timeout with the spans that did arrive", async () => {
    await exportFromChild({ via: "export", spans: plain("first", "second") });
    await expect(receiver.waitFor((s) => s.length > 2, 100)).rejects.toThrow(
      "no match within 100 ms; 2 span(s) in 1 request(s): [first, second]",
    );
  });

  it("resolves once a later export makes the predicate true", async () => {
    const waiting = receiver.waitFor((s) => s.some((x) => x.name === "late"), 5_000);
    await exportFromChild({ via: "export", spans: plain("late") });
    expect((await waiting).map((s) => s.name)).toEqual(["late"]);
  });
});

// A minimal protobuf writer, to build messages the SDK never sends.
const varint = (n: bigint | number): number[] => {
  const out: number[] = [];
  let v = BigInt.asUintN(64, BigInt(n));
  do {
    const low = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v ? low | 0x80 : low);
  } while (v);
  return out;
};
const tag = (field: number, wire: number) => varint((field << 3) | wire);
const len = (field: number, body: number[]) => [...tag(field, 2), ...varint(body.length), ...body];
const str = (field: number, s: string) => len(field, [...Buffer.from(s)]);
const attr = (key: string, anyValue: number[]) => len(9, [...str(1, key), ...len(2, anyValue)]);
/** An ExportTraceServiceRequest with one span made of `spanFields`. */
const request = (...spanFields: number[][]) =>
  Uint8Array.from(len(1, len(2, len(2, spanFields.flat()))));

describe("decodeTraceRequest", () => {
  it("decodes the AnyValue kinds the tracing API cannot produce", () => {
    const [span] = decodeTraceRequest(
      request(
        str(5, "s"),
        attr("bytes", len(7, [0, 255])),
        attr("kv", len(6, len(1, [...str(1, "inner"), ...len(2, [...tag(2, 0), 1])]))),
        attr("nested", len(5, [...len(1, len(5, len(1, str(1, "deep")))), ...len(1, [])])),
        attr("min", [...tag(3, 0), ...varint(-(2n ** 63n))]),
        attr("empty", []),
        attr("__proto__", str(1, "data, not a prototype")),
      ),
    );
    expect(span?.attributes).toEqual({
      bytes: Uint8Array.from([0, 255]),
      kv: { inner: true },
      nested: [["deep"], null],
      min: -(2 ** 63),
      empty: null,
      ["__proto__"]: "data, not a prototype",
    });
    expect(Object.getPrototypeOf(span?.attributes)).toBe(Object.prototype);
  });

  it("skips unknown fields of every wire type", () => {
    const unknown = [
      ...[...tag(90, 0), ...varint(300)],
      ...[...tag(91, 1), 1, 2, 3, 4, 5, 6, 7, 8],
      ...str(92, "later schema"),
      ...[...tag(93, 5), 1, 2, 3, 4],
      ...[...tag(94, 3), ...tag(1, 0), 1, ...tag(94, 4)],
    ];
    const clean = request(str(5, "kept"), [...tag(6, 0), 2]);
    const noisy = Uint8Array.from([
      ...unknown,
      ...request(unknown, str(5, "kept"), [...tag(6, 0), 2]),
      ...unknown,
    ]);
    expect(decodeTraceRequest(noisy)).toEqual(decodeTraceRequest(clean));
    expect(decodeTraceRequest(clean)).toMatchObject([{ name: "kept", kind: "server" }]);
  });

  it("refuses truncated bodies, wrong wire types and unknown enum values", () => {
    const whole = request(str(5, "name"));
    expect(() => decodeTraceRequest(whole.subarray(0, whole.length - 1))).toThrow(ProtoError);
    expect(() => decodeTraceRequest(request([...tag(5, 0), 1]))).toThrow(
      /field 5: string needs wire type 2, got 0/,
    );
    expect(() => decodeTraceRequest(request([...tag(6, 0), 9]))).toThrow(/unknown SpanKind 9/);
    expect(() => decodeTraceRequest(request(len(5, [0xff])))).toThrow(/field 5: invalid UTF-8/);
    expect(() => decodeTraceRequest(Uint8Array.from([0]))).toThrow(/invalid field number 0/);
  });
});
