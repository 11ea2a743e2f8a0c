import type { Broker } from "../broker/connection";
import type { FeedRegistry } from "../broker/feeds";
import type { ReplayLimiter } from "../broker/replayLimiter";
import type { StreamResolver } from "../broker/streams";
import type { Config } from "../config";
import type { SessionRegistry } from "../sse/sessionRegistry";
import type { Logger } from "../telemetry/logger";
import type { Metrics } from "../telemetry/metrics";

/** What the HTTP layer works with. NATS parts appear once the first connection succeeds. */
export interface AppDeps {
  config: Config;
  log: Logger;
  metrics: Metrics;
  sessions: SessionRegistry;
  /** Set once NATS is connected. */
  nats?: NatsParts;
  /** True once shutdown began: readiness fails and new streams are shed. */
  draining: boolean;
}

export interface NatsParts {
  broker: Broker;
  resolver: StreamResolver;
  feeds: FeedRegistry;
  limiter: ReplayLimiter;
}
