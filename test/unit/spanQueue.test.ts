import { ExportResultCode, type ExportResult } from "@opentelemetry/core";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  TracerProvider,
  createAlwaysRecordSampler,
  type ReadableSpan,
  type Sampler,
  type SpanExporter,
} from "@opentelemetry/sdk-trace";
import fc from "fast-check";
import {
  SpanQueue,
  type SpanDropReason,
  type SpanQueueOptions,
} from "../../src/telemetry/spanQueue";

/** What a fake exporter does with one export call. */
type Outcome =
  | "ok" // answers SUCCESS at once
  | "fail" // answers FAILED at once
  | "throw" // throws from export()
  | "hang" // keeps the callback; the test may answer it later
  | "late"; // answers SUCCESS after `lateMs` (a timer)

/** A SpanExporter whose answer to each call is scripted; it records every batch it was given. */
class FakeExporter implements SpanExporter {
  /** Size of each batch handed to export(), in order. */
  readonly batches: number[] = [];
  /** Callbacks of "hang" calls not yet answered by the test. */
  readonly held: Array<(result: ExportResult) => void> = [];
  shutdowns = 0;

  constructor(
    private readonly script: (call: number) => Outcome,
    private readonly lateMs = 0,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.batches.push(spans.length);
    switch (this.script(this.batches.length - 1)) {
      case "ok":
        return done({ code: ExportResultCode.SUCCESS });
      case "fail":
        return done({ code: ExportResultCode.FAILED, error: new Error("collector said no") });
      case "throw":
        throw new Error("exporter blew up");
      case "hang":
        this.held.push(done);
        return;
      case "late":
        setTimeout(() => done({ code: ExportResultCode.SUCCESS }), this.lateMs);
        return;
    }
  }

  /** Answers the oldest held callback (a collector answering long after it was asked). */
  answerOldest(code: ExportResultCode): void {
    this.held.shift()?.({ code });
  }

  /** Answers every held callback. */
  answerAll(code: ExportResultCode): void {
    while (this.held.length > 0) this.answerOldest(code);
  }

  shutdown(): Promise<void> {
    this.shutdowns++;
    return Promise.resolve();
  }
}

const succeeding = () => new FakeExporter(() => "ok");
const failing = () => new FakeExporter(() => "fail");
const throwing = () => new FakeExporter(() => "throw");
const hung = () => new FakeExporter(() => "hang");
/** Follows `outcomes` call by call, then answers "ok". */
const scripted = (...outcomes: Outcome[]) => new FakeExporter((i) => outcomes[i] ?? "ok");

type QueueOptions = Omit<SpanQueueOptions, "onDropped" | "onExported" | "onQueued">;

/** A SpanQueue behind a real TracerProvider, with every callback recorded. */
function setup(opts: QueueOptions, sampler: Sampler = new AlwaysOnSampler()) {
  const dropCalls: Array<[number, SpanDropReason]> = [];
  const exportedCalls: number[] = [];
  const queuedCalls: number[] = [];
  const queue = new SpanQueue({
    ...opts,
    onDropped: (count, reason) => dropCalls.push([count, reason]),
    onExported: (count) => exportedCalls.push(count),
    onQueued: (length) => queuedCalls.push(length),
  });
  const provider = new TracerProvider({ sampler, spanProcessors: [queue] });
  const tracer = provider.getTracer("t");
  let ended = 0;
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const dropped = (reason?: SpanDropReason) =>
    sum(dropCalls.filter(([, r]) => reason === undefined || r === reason).map(([n]) => n));
  return {
    queue,
    provider,
    dropCalls,
    exportedCalls,
    queuedCalls,
    /** Starts and ends `n` spans. */
    end(n: number): void {
      for (let i = 0; i < n; i++) tracer.startSpan("x").end();
      ended += n;
    },
    get ended() {
      return ended;
    },
    exported: () => sum(exportedCalls),
    dropped,
    /** Spans whose fate is known: exported or dropped (not queued, not in flight). */
    accounted: () => sum(exportedCalls) + dropped(),
  };
}

/** Lets every pending promise callback run (setImmediate is never faked here). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Fake timers that also fake performance.now (flush deadlines), but not the microtask queue. */
const useFakeClock = () =>
  jest.useFakeTimers({ doNotFake: ["nextTick", "queueMicrotask", "setImmediate"] });

afterEach(() => {
  jest.useRealTimers();
});

describe("SpanQueue batching", () => {
  beforeEach(useFakeClock);

  it("exports a batch the moment the queue reaches maxBatchSpans, without waiting for the delay", () => {
    const exporter = succeeding();
    const h = setup({ exporter, maxQueueSpans: 100, maxBatchSpans: 4, delayMs: 10_000 });
    h.end(3);
    expect(exporter.batches).toEqual([]);
    h.end(1);
    expect(exporter.batches).toEqual([4]);
    expect(h.exportedCalls).toEqual([4]);
    expect(h.queue.length).toBe(0);
  });

  it("exports a partial batch once delayMs has passed since the first span was queued", async () => {
    const exporter = succeeding();
    const h = setup({ exporter, maxQueueSpans: 100, maxBatchSpans: 10, delayMs: 20 });
    h.end(1);
    await jest.advanceTimersByTimeAsync(10);
    h.end(2);
    await jest.advanceTimersByTimeAsync(9);
    expect(exporter.batches).toEqual([]);
    expect(h.queue.length).toBe(3);
    await jest.advanceTimersByTimeAsync(1);
    expect(exporter.batches).toEqual([3]);
    expect(h.exportedCalls).toEqual([3]);
    expect(h.queue.length).toBe(0);
  });

  it("never hands the exporter more than maxBatchSpans spans, however many are queued", async () => {
    const exporter = succeeding();
    const h = setup({ exporter, maxQueueSpans: 100, maxBatchSpans: 5, delayMs: 20 });
    h.end(23);
    await jest.advanceTimersByTimeAsync(20);
    expect(exporter.batches).toEqual([5, 5, 5, 5, 3]);
    expect(h.exported()).toBe(23);
    expect(h.dropCalls).toEqual([]);
  });

  it("treats a maxBatchSpans larger than the queue as the queue's size, so a full queue goes at once", () => {
    const exporter = succeeding();
    const h = setup({ exporter, maxQueueSpans: 3, delayMs: 10_000 }); // batch defaults to 512
    h.end(3);
    expect(exporter.batches).toEqual([3]);
    expect(h.exported()).toBe(3);
  });

  it("reports the queue's length through onQueued after every change, and not for dropped spans", async () => {
    const exporter = hung();
    const h = setup({ exporter, maxQueueSpans: 4, maxBatchSpans: 3, delayMs: 10_000 });
    h.end(1);
    expect(h.queuedCalls).toEqual([1]);
    h.end(2); // the third fills a batch, which leaves the queue at once
    expect(h.queuedCalls).toEqual([1, 2, 3, 0]);
    h.end(5); // the export hangs: four are queued, the fifth is dropped
    expect(h.queuedCalls).toEqual([1, 2, 3, 0, 1, 2, 3, 4]);
    expect(h.dropCalls).toEqual([[1, "queue-full"]]);
    await h.queue.flush(0, true);
    expect(h.queuedCalls).toEqual([1, 2, 3, 0, 1, 2, 3, 4, 0]);
    expect(h.queue.length).toBe(0);
  });
});

describe("SpanQueue losses", () => {
  beforeEach(useFakeClock);

  it("drops as queue-full exactly the spans beyond the batch in flight and maxQueueSpans while an export hangs", async () => {
    const exporter = hung();
    const h = setup({
      exporter,
      maxQueueSpans: 10,
      maxBatchSpans: 4,
      delayMs: 10_000,
      exportTimeoutMs: 60_000,
    });
    h.end(30);
    expect(exporter.batches).toEqual([4]); // in flight, unanswered
    expect(h.queue.length).toBe(10);
    expect(Math.max(...h.queuedCalls)).toBe(10);
    expect(h.dropped("queue-full")).toBe(30 - 4 - 10);
    expect(h.dropCalls.every(([n, r]) => n === 1 && r === "queue-full")).toBe(true);
    expect(h.exportedCalls).toEqual([]);

    // The end of the story: the batch in flight and the queue are lost at the final flush.
    expect(await h.queue.flush(0, true)).toBe(false);
    expect(h.dropped("shutdown")).toBe(14);
    expect(h.accounted()).toBe(30);
  });

  it.each([
    ["answers FAILED", "fail"],
    ["throws", "throw"],
  ] as const)(
    "counts a batch whose exporter %s as export-failed and still sends the next batch",
    async (_how, outcome) => {
      const exporter = scripted(outcome, "ok");
      const h = setup({ exporter, maxQueueSpans: 100, maxBatchSpans: 3, delayMs: 10_000 });
      h.end(6);
      await settle();
      expect(exporter.batches).toEqual([3, 3]);
      expect(h.dropCalls).toEqual([[3, "export-failed"]]);
      expect(h.exportedCalls).toEqual([3]);
      expect(h.accounted()).toBe(6);
    },
  );

  it("counts every batch of an always-failing exporter as export-failed, each once", async () => {
    for (const exporter of [failing(), throwing()]) {
      const h = setup({ exporter, maxQueueSpans: 100, maxBatchSpans: 2, delayMs: 5 });
      h.end(5);
      await jest.advanceTimersByTimeAsync(5);
      expect(exporter.batches).toEqual([2, 2, 1]);
      expect(h.dropCalls).toEqual([
        [2, "export-failed"],
        [2, "export-failed"],
        [1, "export-failed"],
      ]);
      expect(h.exportedCalls).toEqual([]);
    }
  });

  it("turns an export unanswered after exportTimeoutMs into export-failed and moves on, ignoring its late answer", async () => {
    const exporter = scripted("hang", "ok");
    const h = setup({
      exporter,
      maxQueueSpans: 100,
      maxBatchSpans: 2,
      delayMs: 10_000,
      exportTimeoutMs: 30,
    });
    h.end(4);
    expect(exporter.batches).toEqual([2]);
    expect(h.queue.length).toBe(2);
    await jest.advanceTimersByTimeAsync(29);
    expect(h.dropCalls).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    expect(h.dropCalls).toEqual([[2, "export-failed"]]);
    expect(exporter.batches).toEqual([2, 2]);
    expect(h.exportedCalls).toEqual([2]);

    exporter.answerOldest(ExportResultCode.SUCCESS); // the collector finally answers
    await settle();
    expect(h.exportedCalls).toEqual([2]);
    expect(h.dropCalls).toEqual([[2, "export-failed"]]);
    expect(h.accounted()).toBe(4);
  });
});

describe("SpanQueue flush and shutdown", () => {
  it("gives a final flush with a hung export until its deadline, then counts the batch in flight and the queue as shutdown once", async () => {
    useFakeClock();
    const exporter = hung();
    const h = setup({
      exporter,
      maxQueueSpans: 100,
      maxBatchSpans: 4,
      delayMs: 10_000,
      exportTimeoutMs: 60_000,
    });
    h.end(7); // 4 in flight, 3 queued
    let result: boolean | undefined;
    void h.queue.flush(50, true).then((r) => (result = r));
    await jest.advanceTimersByTimeAsync(49);
    expect(result).toBeUndefined();
    expect(h.dropCalls).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    expect(result).toBe(false);
    expect(h.dropCalls).toEqual([
      [4, "shutdown"],
      [3, "shutdown"],
    ]);
    expect(h.queue.length).toBe(0);
    expect(h.queuedCalls.at(-1)).toBe(0);

    // A second final flush while the export still hangs does not count that batch again.
    const again = h.queue.flush(10, true);
    await jest.advanceTimersByTimeAsync(10);
    expect(await again).toBe(false);
    expect(h.dropCalls).toHaveLength(2);

    // The export's own timeout, and then the collector's late SUCCESS, count nothing again.
    await jest.advanceTimersByTimeAsync(60_000);
    exporter.answerOldest(ExportResultCode.SUCCESS);
    await settle();
    expect(h.exportedCalls).toEqual([]);
    expect(h.dropCalls).toHaveLength(2);
    expect(h.accounted()).toBe(7);
    expect(await h.queue.flush(50, true)).toBe(true); // nothing left, nothing counted
    expect(h.dropCalls).toHaveLength(2);
  });

  it("resolves a final flush with a hung export on the real clock too, and ignores the collector's late answer", async () => {
    const exporter = hung();
    const h = setup({ exporter, maxQueueSpans: 100, maxBatchSpans: 2, delayMs: 10_000 });
    h.end(3); // 2 in flight, 1 queued
    const started = performance.now();
    expect(await h.queue.flush(40, true)).toBe(false);
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(h.dropCalls).toEqual([
      [2, "shutdown"],
      [1, "shutdown"],
    ]);
    exporter.answerOldest(ExportResultCode.SUCCESS);
    await settle();
    expect(h.exportedCalls).toEqual([]);
    expect(h.accounted()).toBe(3);
  }, 10_000);

  it("keeps everything when a flush that is not final runs out of time", async () => {
    useFakeClock();
    const exporter = scripted("hang", "ok");
    const h = setup({ exporter, maxQueueSpans: 100, maxBatchSpans: 2, delayMs: 10_000 });
    h.end(3); // 2 in flight, 1 queued
    const flushed = h.queue.flush(20);
    await jest.advanceTimersByTimeAsync(20);
    expect(await flushed).toBe(false);
    expect(h.dropCalls).toEqual([]);
    expect(h.queue.length).toBe(1);

    exporter.answerOldest(ExportResultCode.SUCCESS); // the collector recovers
    await settle();
    expect(h.exportedCalls).toEqual([2]);
    expect(await h.queue.flush(20)).toBe(true);
    expect(h.exportedCalls).toEqual([2, 1]);
    expect(h.dropCalls).toEqual([]);
  });

  it("gives an export that a flush starts no longer than the flush's own deadline", async () => {
    useFakeClock();
    const exporter = hung();
    const h = setup({
      exporter,
      maxQueueSpans: 100,
      maxBatchSpans: 10,
      delayMs: 10_000,
      exportTimeoutMs: 60_000,
    });
    h.end(2); // queued, waiting for the delay
    let resolved = false;
    void h.queue.flush(30).then(() => (resolved = true));
    expect(exporter.batches).toEqual([2]);
    await jest.advanceTimersByTimeAsync(29);
    expect(resolved).toBe(false);
    expect(h.dropCalls).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    expect(resolved).toBe(true);
    expect(h.dropCalls).toEqual([[2, "export-failed"]]);
    exporter.answerOldest(ExportResultCode.SUCCESS);
    await settle();
    expect(h.exportedCalls).toEqual([]);
    expect(h.accounted()).toBe(2);
  });

  it("exports what is queued on flush and resolves true once the queue is empty", async () => {
    const exporter = succeeding();
    const h = setup({ exporter, maxQueueSpans: 100, maxBatchSpans: 4, delayMs: 10_000 });
    h.end(10);
    expect(await h.queue.flush(1_000, true)).toBe(true);
    expect(exporter.batches).toEqual([4, 4, 2]);
    expect(h.exported()).toBe(10);
    expect(h.dropCalls).toEqual([]);
  });

  it("counts spans ended after shutdownWithin as shutdown, never exporting them, and shuts the exporter down once", async () => {
    const exporter = succeeding();
    const h = setup({ exporter, maxQueueSpans: 100, maxBatchSpans: 10, delayMs: 10_000 });
    h.end(2);
    expect(await h.queue.shutdownWithin(1_000)).toBe(true);
    expect(h.exportedCalls).toEqual([2]);
    expect(exporter.shutdowns).toBe(1);
    h.end(3);
    await settle();
    expect(h.dropCalls).toEqual([
      [1, "shutdown"],
      [1, "shutdown"],
      [1, "shutdown"],
    ]);
    expect(exporter.batches).toEqual([2]);
    expect(h.queue.length).toBe(0);
    expect(h.accounted()).toBe(5);
  });

  it("exports on the provider's forceFlush and stops on the provider's shutdown", async () => {
    const exporter = succeeding();
    const h = setup({ exporter, maxQueueSpans: 100, maxBatchSpans: 10, delayMs: 10_000 });
    h.end(3);
    await h.provider.forceFlush();
    expect(exporter.batches).toEqual([3]);
    expect(exporter.shutdowns).toBe(0);
    h.end(1);
    await h.provider.shutdown();
    expect(exporter.batches).toEqual([3, 1]);
    expect(exporter.shutdowns).toBe(1);
    expect(h.accounted()).toBe(4);
  });

  it.each([
    ["an AlwaysOffSampler", () => new AlwaysOffSampler()],
    [
      "a sampler that records but does not sample",
      () => createAlwaysRecordSampler(new AlwaysOffSampler()),
    ],
  ])(
    "never queues nor counts spans not sampled by %s, even after shutdown",
    async (_name, sampler) => {
      const exporter = succeeding();
      const h = setup({ exporter, maxQueueSpans: 2, maxBatchSpans: 1, delayMs: 1 }, sampler());
      h.end(5);
      expect(await h.queue.shutdownWithin(100)).toBe(true);
      h.end(5);
      await settle();
      expect(h.queuedCalls).toEqual([]);
      expect(h.dropCalls).toEqual([]);
      expect(h.exportedCalls).toEqual([]);
      expect(exporter.batches).toEqual([]);
    },
  );

  it("sees the recording-but-unsampled spans at all (so the test above checks the queue, not the SDK)", () => {
    const ended: boolean[] = [];
    const provider = new TracerProvider({
      sampler: createAlwaysRecordSampler(new AlwaysOffSampler()),
      spanProcessors: [
        {
          onStart: () => undefined,
          onEnd: (span) => void ended.push(span.spanContext().traceFlags === 0),
          forceFlush: () => Promise.resolve(),
          shutdown: () => Promise.resolve(),
        },
      ],
    });
    provider.getTracer("t").startSpan("x").end();
    expect(ended).toEqual([true]);
  });
});

describe("SpanQueue accounting", () => {
  beforeEach(useFakeClock);

  type Op =
    | { kind: "end"; n: number }
    | { kind: "wait"; ms: number }
    | { kind: "flush"; ms: number; final: boolean }
    | { kind: "answer"; ok: boolean };

  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant("end" as const), n: fc.integer({ min: 0, max: 25 }) }),
    fc.record({ kind: fc.constant("wait" as const), ms: fc.integer({ min: 0, max: 150 }) }),
    fc.record({
      kind: fc.constant("flush" as const),
      ms: fc.integer({ min: 0, max: 100 }),
      final: fc.boolean(),
    }),
    fc.record({ kind: fc.constant("answer" as const), ok: fc.boolean() }),
  );

  const outcome = fc.constantFrom<Outcome>("ok", "fail", "throw", "hang", "late");

  /** Runs `p` while advancing the fake clock by `ms`; asserts it is settled by then. */
  async function within<T>(p: Promise<T>, ms: number): Promise<T> {
    let done = false;
    void p.then(() => (done = true));
    await jest.advanceTimersByTimeAsync(ms);
    await settle();
    expect(done).toBe(true);
    return p;
  }

  it("always accounts for every sampled span as exported, dropped, queued or the one batch in flight, and for all of them after a final flush", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          maxQueueSpans: fc.integer({ min: 0, max: 20 }),
          maxBatchSpans: fc.integer({ min: 1, max: 10 }),
          delayMs: fc.integer({ min: 1, max: 100 }),
          exportTimeoutMs: fc.integer({ min: 1, max: 100 }),
        }),
        fc.array(outcome, { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 0, max: 150 }),
        fc.array(op, { maxLength: 15 }),
        fc.record({
          how: fc.constantFrom("flush", "shutdownWithin"),
          ms: fc.integer({ min: 0, max: 100 }),
          endedAfter: fc.integer({ min: 0, max: 5 }),
        }),
        async (opts, outcomes, lateMs, ops, last) => {
          jest.clearAllTimers();
          const exporter = new FakeExporter((i) => outcomes[i % outcomes.length]!, lateMs);
          const h = setup({ exporter, ...opts });
          const batchCap = Math.max(1, Math.min(opts.maxBatchSpans, opts.maxQueueSpans));

          const check = () => {
            const unaccounted = h.ended - h.accounted() - h.queue.length;
            // At most one export runs at a time, so only its batch may be unaccounted for.
            expect([0, exporter.batches.at(-1) ?? 0]).toContain(unaccounted);
            expect(h.queue.length).toBeLessThanOrEqual(opts.maxQueueSpans);
            expect(h.queuedCalls.at(-1) ?? 0).toBe(h.queue.length);
            for (const b of exporter.batches) {
              expect(b).toBeGreaterThanOrEqual(1);
              expect(b).toBeLessThanOrEqual(batchCap);
            }
            for (const [n] of h.dropCalls) expect(n).toBeGreaterThanOrEqual(1);
            for (const n of h.exportedCalls) expect(n).toBeGreaterThanOrEqual(1);
          };

          for (const o of ops) {
            if (o.kind === "end") h.end(o.n);
            else if (o.kind === "wait") await jest.advanceTimersByTimeAsync(o.ms);
            else if (o.kind === "flush") await within(h.queue.flush(o.ms, o.final), o.ms);
            else exporter.answerOldest(o.ok ? ExportResultCode.SUCCESS : ExportResultCode.FAILED);
            await settle();
            check();
          }

          const finished =
            last.how === "flush" ? h.queue.flush(last.ms, true) : h.queue.shutdownWithin(last.ms);
          await within(finished, last.ms);
          check();
          expect(h.queue.length).toBe(0);
          expect(h.accounted()).toBe(h.ended);

          if (last.how === "shutdownWithin") {
            const before = h.dropped("shutdown");
            h.end(last.endedAfter);
            expect(h.dropped("shutdown")).toBe(before + last.endedAfter);
          }

          // Late answers and timeouts after the end count nothing a second time.
          exporter.answerAll(ExportResultCode.SUCCESS);
          await jest.advanceTimersByTimeAsync(1_000);
          await settle();
          expect(h.accounted()).toBe(h.ended);
        },
      ),
      { numRuns: 200 },
    );
  });
});
