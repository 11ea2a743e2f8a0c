import { ConfigError, loadConfig, traceQueueSpans } from "./config";
import { FLUSH_MS, startGateway } from "./gateway";
import { createLogger } from "./telemetry/logger";
import { createMetrics } from "./telemetry/metrics";
import { startTracing } from "./telemetry/tracing";

/** Composition root: config → telemetry → gateway → signals. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.LOG_LEVEL);
  const metrics = createMetrics();
  const tracing = startTracing(process.env, {
    queueSpans: traceQueueSpans(config),
    metrics,
    log,
  });
  const gateway = await startGateway(config, log, metrics);

  let signals = 0;
  const stop = (signal: NodeJS.Signals) => {
    if (++signals === 2) {
      // Not a bare exit: that would drop every client without a `retry:`, and all of them
      // would reconnect to the other pods at the same moment.
      log.warn({ signal }, "second signal; closing every session now, then exiting");
      void gateway
        .shutdownNow()
        .then(() => tracing.shutdown(FLUSH_MS))
        .finally(() => process.exit(1));
      return;
    }
    if (signals > 2) {
      log.warn({ signal }, "third signal; exiting now");
      process.exit(1);
    }
    log.info({ signal }, "shutting down");
    const began = performance.now();
    void gateway
      .shutdown()
      // Spans get what is left of SHUTDOWN_TIMEOUT_MS: a hung collector cannot hold the pod
      // past its grace period.
      .then(() =>
        tracing.shutdown(Math.max(0, config.SHUTDOWN_TIMEOUT_MS - (performance.now() - began))),
      )
      .finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("unhandledRejection", (err) => log.error({ err }, "unhandled rejection"));
}

void main();
