import { ConfigError, loadConfig } from "./config";
import { startGateway } from "./gateway";
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
  const stopTracing = startTracing(process.env);
  const gateway = await startGateway(config, log, createMetrics());

  let signals = 0;
  const stop = (signal: NodeJS.Signals) => {
    if (++signals === 2) {
      // Not a bare exit: that would drop every client without a `retry:`, and all of them
      // would reconnect to the other pods at the same moment.
      log.warn({ signal }, "second signal; closing every session now, then exiting");
      void gateway.shutdownNow().finally(() => process.exit(1));
      return;
    }
    if (signals > 2) {
      log.warn({ signal }, "third signal; exiting now");
      process.exit(1);
    }
    log.info({ signal }, "shutting down");
    void gateway
      .shutdown()
      .then(() => stopTracing())
      .finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("unhandledRejection", (err) => log.error({ err }, "unhandled rejection"));
}

void main();
