import { readFileSync } from "node:fs";
import { authEnabled, type Config } from "../config";
import type { Logger } from "../telemetry/logger";
import type { Metrics } from "../telemetry/metrics";
import { Authorizer } from "./authorizer";
import { TokenVerifier } from "./tokenVerifier";

/**
 * The authorizer the settings describe, or undefined when authorization is off (no key
 * configured). Throws with a clear message when a key cannot be used (a bad PEM, a missing
 * file): better a pod that does not start than one that lets everyone in or no one.
 */
export async function createAuthorizer(
  config: Config,
  metrics: Metrics,
  log: Logger,
): Promise<Authorizer | undefined> {
  if (!authEnabled(config)) {
    log.info("authorization is off: every subject the allowlist permits is readable by anyone");
    return undefined;
  }
  const publicKeyPem = config.AUTH_JWT_PUBLIC_KEY_FILE
    ? readFileSync(config.AUTH_JWT_PUBLIC_KEY_FILE, "utf8")
    : config.AUTH_JWT_PUBLIC_KEY?.replace(/\\n/g, "\n");
  const verifier = await TokenVerifier.create(
    {
      secret: config.AUTH_JWT_SECRET,
      publicKeyPem,
      jwksUrl: config.AUTH_JWKS_URL,
      algorithms:
        config.AUTH_JWT_ALGORITHMS.length > 0 ? [...config.AUTH_JWT_ALGORITHMS] : undefined,
      issuer: config.AUTH_JWT_ISSUER,
      audience: config.AUTH_JWT_AUDIENCE.length > 0 ? [...config.AUTH_JWT_AUDIENCE] : undefined,
      clockToleranceSec: config.AUTH_JWT_LEEWAY_S,
      subscribeClaim: config.AUTH_JWT_SUBSCRIBE_CLAIM,
      maxTokenBytes: config.AUTH_JWT_MAX_BYTES,
      jwksCooldownMs: config.AUTH_JWKS_COOLDOWN_MS,
      jwksTimeoutMs: config.AUTH_JWKS_TIMEOUT_MS,
    },
    {
      onJwksFailure: (err: unknown) => {
        metrics.jwksFetchFailures.inc();
        log.warn({ err: err instanceof Error ? err.message : String(err) }, "JWKS fetch failed");
      },
    },
  );
  if (config.DEMO)
    log.warn(
      "DEMO=true with authorization on: /demo/token mints tokens for any subject to anyone; for local development only",
    );
  log.info(
    {
      keys: config.AUTH_JWKS_URL ? "jwks" : config.AUTH_JWT_SECRET ? "secret" : "public-key",
      cookie: config.AUTH_COOKIE,
      queryToken: config.AUTH_QUERY_TOKEN,
      publicSubjects: config.AUTH_PUBLIC_SUBJECTS,
    },
    "authorization is on",
  );
  return new Authorizer(
    verifier,
    { cookie: config.AUTH_COOKIE, query: config.AUTH_QUERY_TOKEN },
    config.AUTH_PUBLIC_SUBJECTS,
  );
}
