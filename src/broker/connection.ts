import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import {
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { readFileSync } from "node:fs";
import type { Config } from "../config";
import type { Logger } from "../telemetry/logger";
import type { Metrics } from "../telemetry/metrics";

/** The pod's one NATS connection and its JetStream handles. */
export interface Broker {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  /** True while the connection is up (not disconnected, reconnecting or closed). */
  connected(): boolean;
  /** Resolves once JetStream answered an account-info request within the request timeout. */
  jetstreamReachable(): Promise<boolean>;
  /** Drains subscriptions and closes the connection. */
  shutdown(): Promise<void>;
}

/**
 * Exponential backoff with full jitter between reconnect attempts, so a NATS restart is not
 * met by every pod at the same instant. Attempts never stop (maxReconnectAttempts -1).
 */
export function reconnectDelay(
  attempt: number,
  minMs: number,
  maxMs: number,
  rnd = Math.random,
): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20));
  return Math.round(minMs + rnd() * (ceiling - minMs));
}

/**
 * TLS options from the NATS_TLS_* files, or undefined to let the URL decide (`tls://` still
 * uses TLS with the system's CAs). The transport reads the files itself at connect time.
 */
function natsTls(
  config: Config,
): { caFile?: string; certFile?: string; keyFile?: string } | undefined {
  const {
    NATS_TLS_CA_FILE: caFile,
    NATS_TLS_CERT_FILE: certFile,
    NATS_TLS_KEY_FILE: keyFile,
  } = config;
  if (!caFile && !certFile) return undefined;
  return { ...(caFile && { caFile }), ...(certFile && { certFile }), ...(keyFile && { keyFile }) };
}

/** Connects to NATS, waiting (with the same backoff) until the first connection succeeds. */
export async function connectBroker(
  config: Config,
  log: Logger,
  metrics: Metrics,
): Promise<Broker> {
  let attempt = 0;
  const delay = () =>
    reconnectDelay(attempt++, config.NATS_RECONNECT_MIN_MS, config.NATS_RECONNECT_MAX_MS);
  const nc = await connect({
    servers: config.NATS_URL,
    name: config.NATS_NAME,
    maxReconnectAttempts: -1,
    waitOnFirstConnect: true,
    reconnectDelayHandler: delay,
    timeout: config.NATS_REQUEST_TIMEOUT_MS,
    token: config.NATS_TOKEN,
    user: config.NATS_USER,
    pass: config.NATS_PASSWORD,
    authenticator: config.NATS_CREDS_FILE
      ? credsAuthenticator(readFileSync(config.NATS_CREDS_FILE))
      : undefined,
    tls: natsTls(config),
  });
  let up = true;
  metrics.natsConnected.set(1);
  log.info({ server: nc.getServer() }, "nats connected");
  void (async () => {
    for await (const s of nc.status()) {
      switch (s.type) {
        case "disconnect":
          up = false;
          metrics.natsConnected.set(0);
          log.warn({ server: s.server }, "nats disconnected");
          break;
        case "reconnect":
          up = true;
          attempt = 0;
          metrics.natsConnected.set(1);
          log.info({ server: s.server }, "nats reconnected");
          break;
        case "error":
          log.warn({ err: s.error }, "nats error");
          break;
        case "close":
          up = false;
          metrics.natsConnected.set(0);
          break;
        default:
          break;
      }
    }
  })();
  const opts = { timeout: config.NATS_REQUEST_TIMEOUT_MS };
  const js = jetstream(nc, opts);
  const jsm = await jetstreamManager(nc, { ...opts, checkAPI: false });
  return {
    nc,
    js,
    jsm,
    connected: () => up && !nc.isClosed(),
    async jetstreamReachable() {
      if (!up) return false;
      try {
        await jsm.getAccountInfo();
        return true;
      } catch {
        return false;
      }
    },
    async shutdown() {
      if (nc.isClosed()) return;
      await nc.drain().catch(() => nc.close());
    },
  };
}
