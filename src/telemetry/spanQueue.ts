import { TraceFlags, type Context } from "@opentelemetry/api";
import { ExportResultCode } from "@opentelemetry/core";
import type { ReadableSpan, Span, SpanExporter, SpanProcessor } from "@opentelemetry/sdk-trace";

/** Why spans were lost; a label of `sse_trace_spans_dropped_total`. */
export type SpanDropReason =
  | "queue-full" // more spans ended than the queue holds while exports were slower
  | "export-failed" // the exporter reported failure or did not answer in time
  | "shutdown"; // still queued when the shutdown budget ran out, or ended after it

/** Options for {@link SpanQueue}. */
export interface SpanQueueOptions {
  exporter: SpanExporter;
  /** Most spans waiting for export (TRACE_QUEUE_SPANS); past it new spans are dropped. */
  maxQueueSpans: number;
  /** Spans per export request (OTEL_BSP_MAX_EXPORT_BATCH_SIZE). Default 512. */
  maxBatchSpans?: number;
  /** Longest a span waits before an export starts, in ms (OTEL_BSP_SCHEDULE_DELAY). Default 5000. */
  delayMs?: number;
  /**
   * Longest one export may take, in ms (OTEL_BSP_EXPORT_TIMEOUT); past it the batch counts as
   * failed and the next one starts. Default 30000.
   */
  exportTimeoutMs?: number;
  /** Spans lost, and why; called once per loss with the count. */
  onDropped?: (count: number, reason: SpanDropReason) => void;
  /** Spans the exporter accepted. */
  onExported?: (count: number) => void;
  /** The queue's length after every change. */
  onQueued?: (length: number) => void;
}

/**
 * A batching span processor that never loses a span without saying so. The SDK's own
 * BatchSpanProcessor drops spans past its queue (2048 by default) with only a debug line, and
 * its flush at shutdown waits as long as the exporter does; a pod that closes thousands of
 * sessions at once, or whose collector hangs, would lose spans silently or overrun its grace
 * period. Here every loss is reported (a metric and a warning), the queue is sized by the
 * caller, and {@link flush} takes a deadline.
 *
 * One export runs at a time, as in the SDK's processor: a collector that slows down makes the
 * queue grow up to its bound rather than the number of open requests.
 */
export class SpanQueue implements SpanProcessor {
  private queue: ReadableSpan[] = [];
  private timer: NodeJS.Timeout | undefined;
  private exporting: Promise<void> | undefined;
  /** The batch being exported; `settled` once it has been counted (exported or dropped). */
  private inFlight: { spans: number; settled: boolean } | undefined;
  private stopped = false;
  private readonly maxBatch: number;
  private readonly delayMs: number;
  private readonly exportTimeoutMs: number;

  constructor(private readonly opts: SpanQueueOptions) {
    this.maxBatch = Math.max(1, Math.min(opts.maxBatchSpans ?? 512, opts.maxQueueSpans));
    this.delayMs = opts.delayMs ?? 5_000;
    this.exportTimeoutMs = opts.exportTimeoutMs ?? 30_000;
  }

  /** Spans waiting for export. */
  get length(): number {
    return this.queue.length;
  }

  onStart(_span: Span, _parentContext: Context): void {}

  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.stopped) return this.opts.onDropped?.(1, "shutdown");
    if (this.queue.length >= this.opts.maxQueueSpans) return this.opts.onDropped?.(1, "queue-full");
    this.queue.push(span);
    this.opts.onQueued?.(this.queue.length);
    this.schedule();
  }

  /** Exports what is queued, within the export timeout. */
  forceFlush(): Promise<void> {
    return this.flush(this.exportTimeoutMs).then(() => undefined);
  }

  /**
   * Exports everything queued, giving up after `withinMs`: what is still queued then is
   * dropped (counted as "shutdown" when `final`). Resolves true when the queue emptied.
   */
  async flush(withinMs: number, final = false): Promise<boolean> {
    const deadline = performance.now() + withinMs;
    this.clearTimer();
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      if (this.exporting) await within(this.exporting, left);
      else if (this.queue.length > 0) this.exportNext(Math.min(left, this.exportTimeoutMs));
      else {
        // Stopped before anything else runs: a span ended by a continuation of this flush
        // would otherwise be queued after it and neither exported nor counted.
        if (final) this.stopped = true;
        return true;
      }
    }
    // Stopped before the counting below: a span ended by a continuation of it would otherwise
    // be queued after the count and never exported nor counted.
    if (final) this.stopped = true;
    if (final && this.inFlight && !this.inFlight.settled) {
      // The process exits before the collector answers: that batch is lost too.
      this.inFlight.settled = true;
      this.opts.onDropped?.(this.inFlight.spans, "shutdown");
    }
    if (final && this.queue.length > 0) {
      this.opts.onDropped?.(this.queue.length, "shutdown");
      this.queue = [];
      this.opts.onQueued?.(0);
    }
    return this.queue.length === 0 && this.exporting === undefined;
  }

  /** Flushes within `withinMs`, then stops taking spans; the exporter is shut down. */
  async shutdownWithin(withinMs: number): Promise<boolean> {
    const start = performance.now();
    const emptied = await this.flush(withinMs, true);
    this.stopped = true;
    const left = withinMs - (performance.now() - start);
    if (left > 0)
      await within(
        this.opts.exporter.shutdown().catch(() => undefined),
        left,
      );
    return emptied;
  }

  shutdown(): Promise<void> {
    return this.shutdownWithin(this.exportTimeoutMs).then(() => undefined);
  }

  private schedule(): void {
    if (this.exporting) return; // its end looks at the queue again
    if (this.queue.length >= this.maxBatch) {
      this.clearTimer();
      this.exportNext(this.exportTimeoutMs);
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.exporting && !this.stopped && this.queue.length > 0)
        this.exportNext(this.exportTimeoutMs);
    }, this.delayMs);
    this.timer.unref();
  }

  private exportNext(timeoutMs: number): void {
    const spans = this.queue.splice(0, this.maxBatch);
    this.opts.onQueued?.(this.queue.length);
    const batch = { spans: spans.length, settled: false };
    this.inFlight = batch;
    const done = new Promise<void>((resolve) => {
      let answered = false;
      const settle = (ok: boolean) => {
        if (answered) return;
        answered = true;
        clearTimeout(timer);
        if (!batch.settled) {
          batch.settled = true;
          if (ok) this.opts.onExported?.(spans.length);
          else this.opts.onDropped?.(spans.length, "export-failed");
        }
        resolve();
      };
      // A hung collector must not hold the queue (or the shutdown) longer than this.
      const timer = setTimeout(() => settle(false), timeoutMs);
      timer.unref();
      try {
        this.opts.exporter.export(spans, (r) => settle(r.code === ExportResultCode.SUCCESS));
      } catch {
        settle(false);
      }
    });
    this.exporting = done.then(() => {
      this.exporting = undefined;
      if (this.inFlight === batch) this.inFlight = undefined;
      if (this.queue.length > 0 && !this.stopped) this.schedule();
    });
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** Waits for `p`, at most `ms`. */
function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.then(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}
