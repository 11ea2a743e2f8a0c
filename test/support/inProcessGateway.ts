import { Registry } from "prom-client";
import { loadConfig } from "../../src/config";
import { startGateway, type Gateway } from "../../src/gateway";
import { createLogger, type Logger } from "../../src/telemetry/logger";
import { createMetrics } from "../../src/telemetry/metrics";

export interface TestGateway {
  url: string;
  /** The admin port's base URL: /livez, /readyz, /metrics. */
  adminUrl: string;
  gateway: Gateway;
  /** Prometheus text of this gateway's own registry. */
  metrics(): Promise<string>;
  close(): Promise<void>;
}

/**
 * Starts the real gateway in this process on an ephemeral port, connected to `natsUrl`, with
 * a registry of its own. Tests pass any other setting through `env`.
 */
export async function startTestGateway(
  natsUrl: string,
  env: Record<string, string> = {},
  opts: { log?: Logger } = {},
): Promise<TestGateway> {
  const config = loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    ADMIN_PORT: "0",
    ADMIN_HOST: "127.0.0.1",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    DRAIN_WINDOW_MS: "0",
    SHUTDOWN_TIMEOUT_MS: "5000",
    NATS_URL: natsUrl,
    ...env,
  });
  const metrics = createMetrics(new Registry(), false);
  const log = opts.log ?? createLogger(config.LOG_LEVEL);
  const gateway = await startGateway(config, log, metrics);
  await gateway.natsReady;
  return {
    url: `http://127.0.0.1:${gateway.port}`,
    adminUrl: `http://127.0.0.1:${gateway.adminPort}`,
    gateway,
    metrics: () => metrics.registry.metrics(),
    close: () => gateway.shutdown(),
  };
}
