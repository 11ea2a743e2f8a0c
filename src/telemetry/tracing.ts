import { trace, type Tracer } from "@opentelemetry/api";
import { NodeSDK } from "@opentelemetry/sdk-node";

/** The tracer every session span comes from; a no-op until an SDK is registered. */
export function tracer(): Tracer {
  return trace.getTracer("jetstream-sse-gateway");
}

/**
 * Starts the OpenTelemetry SDK when the standard `OTEL_*` variables ask for an exporter
 * (`OTEL_TRACES_EXPORTER` or `OTEL_EXPORTER_OTLP_ENDPOINT`), so a pod without a collector
 * does not log export failures forever. The SDK reads its own `OTEL_*` settings.
 *
 * @returns a shutdown function that flushes pending spans.
 */
export function startTracing(
  env: Readonly<Record<string, string | undefined>>,
): () => Promise<void> {
  const wanted =
    env.OTEL_SDK_DISABLED !== "true" &&
    (Boolean(env.OTEL_TRACES_EXPORTER && env.OTEL_TRACES_EXPORTER !== "none") ||
      Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT));
  if (!wanted) return async () => {};
  const sdk = new NodeSDK({ serviceName: env.OTEL_SERVICE_NAME ?? "jetstream-sse-gateway" });
  sdk.start();
  return () => sdk.shutdown();
}
