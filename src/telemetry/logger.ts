import { trace } from "@opentelemetry/api";
import pino, { type Logger } from "pino";
import { SERVICE_NAME } from "./version";

export type { Logger };

/**
 * A JSON logger on stdout; `level` is the LOG_LEVEL setting. Every line written while a span
 * is active (a request, a session's catch-up, its close) carries that span's `trace_id` and
 * `span_id`, so a log search and a trace search find each other.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = { level, base: { service: SERVICE_NAME }, mixin: traceIds };
  return destination ? pino(options, destination) : pino(options);
}

/** The active span's ids, in the field names the OpenTelemetry log data model uses. */
export function traceIds(): Record<string, string> {
  const ctx = trace.getActiveSpan()?.spanContext();
  // A fresh object every time: pino merges the line's own fields into it.
  if (!ctx || !trace.isSpanContextValid(ctx)) return {};
  return {
    trace_id: ctx.traceId,
    span_id: ctx.spanId,
    trace_flags: ctx.traceFlags.toString(16).padStart(2, "0"),
  };
}
