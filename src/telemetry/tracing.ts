import { context, propagation, trace, type Tracer } from "@opentelemetry/api";
import { OTLPTraceExporter as OtlpGrpc } from "@opentelemetry/exporter-trace-otlp-grpc";
import { OTLPTraceExporter as OtlpJson } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as OtlpProto } from "@opentelemetry/exporter-trace-otlp-proto";
import { ZipkinExporter } from "@opentelemetry/exporter-zipkin";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { ConsoleSpanExporter, type SpanExporter } from "@opentelemetry/sdk-trace";
import type { Logger } from "./logger";
import type { Metrics } from "./metrics";
import { SpanQueue, type SpanDropReason } from "./spanQueue";
import { SERVICE_NAME, serviceVersion } from "./version";

// One tracer for the process. Taken from the global API (a proxy until an SDK registers), so
// modules may hold it from import time.
const TRACER: Tracer = trace.getTracer(SERVICE_NAME, serviceVersion());

/** The tracer every gateway span comes from; a no-op until {@link startTracing} registers an SDK. */
export function tracer(): Tracer {
  return TRACER;
}

let active = false;

/** True while an SDK exports spans: callers skip work (header parsing, links) otherwise. */
export function tracingActive(): boolean {
  return active;
}

/** Options for {@link startTracing}. */
export interface TracingOptions {
  /** Spans the export queue holds (TRACE_QUEUE_SPANS, or derived from MAX_CONNECTIONS). */
  queueSpans: number;
  metrics?: Metrics;
  log?: Logger;
  /** Replaces the exporters the `OTEL_*` variables name; for tests. */
  exporter?: SpanExporter;
}

/** A started (or not) tracing SDK. */
export interface Tracing {
  /** True when an SDK was started and exports spans. */
  readonly enabled: boolean;
  /** The exporters in use, by name (`otlp/http/protobuf`, `console`, ...). */
  readonly exporters: readonly string[];
  /**
   * Exports what is queued, giving up after `withinMs` (a hung collector cannot hold the
   * process), then unregisters the SDK. Idempotent.
   */
  shutdown(withinMs: number): Promise<void>;
}

/** How often a warning about lost spans may be logged, in ms. */
const DROP_WARN_INTERVAL_MS = 10_000;

/**
 * Starts the OpenTelemetry SDK when the standard variables ask for an exporter:
 * `OTEL_TRACES_EXPORTER` (`otlp`, `console`, `zipkin`; `none` for nothing), or an OTLP endpoint
 * (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) with the exporter unset.
 * `OTEL_SDK_DISABLED=true` wins over both. Without an exporter no SDK starts: a pod without a
 * collector would otherwise log export failures forever.
 *
 * The SDK reads the rest itself: `OTEL_TRACES_SAMPLER` and its argument (default
 * `parentbased_always_on`), `OTEL_PROPAGATORS` (default `tracecontext,baggage`), the exporter's
 * endpoint, headers, protocol and timeout, span limits, and the resource. The resource's
 * defaults are `service.name=jetstream-sse-gateway` and `service.version` from package.json;
 * `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` override them.
 *
 * Spans go through a {@link SpanQueue} of `queueSpans` per exporter, whose losses are counted
 * in `sse_trace_spans_dropped_total` and logged as warnings.
 */
export function startTracing(
  env: Readonly<Record<string, string | undefined>>,
  opts: TracingOptions,
): Tracing {
  const unknown: string[] = [];
  const named = opts.exporter
    ? [["custom", opts.exporter] as const]
    : exportersFromEnv(env, unknown);
  if (unknown.length > 0)
    opts.log?.warn({ OTEL_TRACES_EXPORTER: unknown }, "tracing: unknown exporters ignored");
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true" || named.length === 0)
    return { enabled: false, exporters: [], shutdown: async () => {} };

  const report = dropReporter(opts);
  const queues = named.map(
    ([name, exporter]) =>
      new SpanQueue({
        exporter,
        maxQueueSpans: opts.queueSpans,
        maxBatchSpans: positive(env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE) ?? 512,
        // The console exporter is for watching locally: no 5 s wait.
        delayMs: name === "console" ? 100 : (nonNegative(env.OTEL_BSP_SCHEDULE_DELAY) ?? 5_000),
        exportTimeoutMs: positive(env.OTEL_BSP_EXPORT_TIMEOUT) ?? 30_000,
        onDropped: report,
        onExported: (n) => opts.metrics?.traceSpansExported.inc(n),
        onQueued: () => opts.metrics?.traceQueueSpans.set(queues.reduce((n, q) => n + q.length, 0)),
      }),
  );
  opts.metrics?.traceQueueSpansMax.set(opts.queueSpans * queues.length);
  const sdk = new NodeSDK({
    // Below the detected resource: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
    resource: defaultResource().merge(
      resourceFromAttributes({ "service.name": SERVICE_NAME, "service.version": serviceVersion() }),
    ),
    spanProcessors: queues,
    // Metrics are prom-client's (/metrics); logs are pino's on stdout.
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  active = true;
  opts.log?.info(
    { exporters: named.map(([n]) => n), queueSpans: opts.queueSpans },
    "tracing started",
  );

  let done: Promise<void> | undefined;
  // The first call sets the flush's budget; any call (a second signal's, shorter) resolves
  // within its own `withinMs` whatever the first one still waits for.
  const shutdown = (withinMs: number) => {
    done ??= (async () => {
      active = false;
      const start = performance.now();
      const emptied = await Promise.all(queues.map((q) => q.shutdownWithin(withinMs)));
      if (emptied.includes(false))
        opts.log?.warn({ withinMs }, "tracing: spans still queued at exit were dropped");
      const left = withinMs - (performance.now() - start);
      if (left > 0) await Promise.race([sdk.shutdown().catch(() => undefined), sleep(left)]);
      trace.disable();
      context.disable();
      propagation.disable();
    })();
    return Promise.race([done, sleep(withinMs)]);
  };
  return { enabled: true, exporters: named.map(([n]) => n), shutdown };
}

/** The exporters `OTEL_TRACES_EXPORTER` names, as the SDK would build them. */
function exportersFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  unknown: string[],
): Array<readonly [string, SpanExporter]> {
  const endpoint = Boolean(
    env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim(),
  );
  const names = [
    ...new Set(
      (env.OTEL_TRACES_EXPORTER ?? "")
        .split(",")
        .map((s) => s.trim().toLowerCase())
        .filter(Boolean),
    ),
  ];
  if (names.length === 0 && endpoint) names.push("otlp");
  if (names.includes("none")) return [];
  const out: Array<readonly [string, SpanExporter]> = [];
  for (const name of names) {
    if (name === "console") out.push([name, new ConsoleSpanExporter()]);
    else if (name === "zipkin") out.push([name, new ZipkinExporter()]);
    else if (name === "otlp") {
      const protocol =
        env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL?.trim() ||
        env.OTEL_EXPORTER_OTLP_PROTOCOL?.trim() ||
        "http/protobuf";
      const exporter =
        protocol === "grpc"
          ? new OtlpGrpc()
          : protocol === "http/json"
            ? new OtlpJson()
            : new OtlpProto();
      out.push([
        `otlp/${protocol === "grpc" || protocol === "http/json" ? protocol : "http/protobuf"}`,
        exporter,
      ]);
    } else unknown.push(name);
  }
  return out;
}

/** Counts lost spans and warns, at most once per {@link DROP_WARN_INTERVAL_MS}. */
function dropReporter(opts: TracingOptions): (n: number, reason: SpanDropReason) => void {
  let unreported: Partial<Record<SpanDropReason, number>> = {};
  let lastWarn = -Infinity;
  let timer: NodeJS.Timeout | undefined;
  const warn = () => {
    timer = undefined;
    lastWarn = performance.now();
    const dropped = unreported;
    unreported = {};
    opts.log?.warn(
      { dropped, queueSpans: opts.queueSpans },
      "tracing: spans were dropped (see sse_trace_spans_dropped_total)",
    );
  };
  return (n, reason) => {
    opts.metrics?.traceSpansDropped.inc({ reason }, n);
    unreported[reason] = (unreported[reason] ?? 0) + n;
    if (timer) return;
    const wait = lastWarn + DROP_WARN_INTERVAL_MS - performance.now();
    if (wait <= 0) warn();
    else {
      timer = setTimeout(warn, wait);
      timer.unref();
    }
  };
}

function positive(v: string | undefined): number | undefined {
  const n = Number(v);
  return v !== undefined && v.trim() !== "" && Number.isFinite(n) && n > 0 ? n : undefined;
}

function nonNegative(v: string | undefined): number | undefined {
  const n = Number(v);
  return v !== undefined && v.trim() !== "" && Number.isFinite(n) && n >= 0 ? n : undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
