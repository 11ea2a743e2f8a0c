import type { Authorizer } from "../auth/authorizer";
import type { ExpiryWheel } from "../auth/expiryWheel";
import type { Broker } from "../broker/connection";
import type { Session } from "../sse/session";
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
  /** Set when authorization is configured (AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY(_FILE), AUTH_JWKS_URL). */
  auth?: Authorizer;
  /** Ends streams whose token expires (one timer for all). */
  expiry: ExpiryWheel<Session>;
}

export interface NatsParts {
  broker: Broker;
  resolver: StreamResolver;
  feeds: FeedRegistry;
  limiter: ReplayLimiter;
}
