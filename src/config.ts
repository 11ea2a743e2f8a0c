/**
 * The gateway's configuration: every knob is an environment variable, parsed and validated
 * once at start-up. `loadConfig` is the only reader of `process.env` (it is passed in).
 * A bad value stops start-up with one message naming every bad variable.
 */
import { z } from "zod";
import { parsePatternList } from "./auth/subjectGrants";
import { parseCidrList } from "./http/clientAddress";

const int = (def: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^-?[0-9]+$/, `expected an integer from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `expected at least ${min}`).max(max, `expected at most ${max}`))
    .optional()
    .transform((v) => v ?? def);

const bool = (def: boolean) =>
  z
    .enum(["true", "false", "1", "0", "yes", "no"], { error: "expected true or false" })
    .optional()
    .transform((v) => (v === undefined ? def : v === "true" || v === "1" || v === "yes"));

const str = (def: string) =>
  z
    .string()
    .optional()
    .transform((v) => v ?? def);

const optional = z
  .string()
  .optional()
  .transform((v) => (v === "" ? undefined : v));

const natsUrls = z
  .string()
  .optional()
  .transform((v) =>
    (v ?? "nats://127.0.0.1:4222")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  )
  .pipe(
    z
      .array(
        z
          .string()
          .regex(/^(nats|tls|ws|wss):\/\/[^\s]+$|^[^\s:/]+:[0-9]+$/, "expected nats://host:port"),
      )
      .min(1, "expected at least one nats://host:port"),
  );

const list = z
  .string()
  .optional()
  .transform((v) =>
    (v ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );

/** The settings that each turn authorization on; at most one may be set. */
const AUTH_KEYS = [
  "AUTH_JWT_SECRET",
  "AUTH_JWT_PUBLIC_KEY",
  "AUTH_JWT_PUBLIC_KEY_FILE",
  "AUTH_JWKS_URL",
] as const;

/** An RFC 9110 token: what a header name (and a cookie name) may be. */
const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const logLevel = z
  .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"], {
    error: "expected one of fatal, error, warn, info, debug, trace, silent",
  })
  .optional()
  .transform((v) => v ?? "info");

// The keys are the environment variable names, so a validation issue's path names the
// variable exactly. The README's settings table lists the same names, defaults and units.
const schema = z.object({
  PORT: int(8080, 0, 65535),
  HOST: str("0.0.0.0"),
  ADMIN_PORT: int(9090, 0, 65535),
  ADMIN_HOST: str("0.0.0.0"),
  NATS_URL: natsUrls,
  NATS_NAME: str("jetstream-sse-gateway"),
  NATS_TOKEN: optional,
  NATS_USER: optional,
  NATS_PASSWORD: optional,
  NATS_CREDS_FILE: optional,
  NATS_TLS_CA_FILE: optional,
  NATS_TLS_CERT_FILE: optional,
  NATS_TLS_KEY_FILE: optional,
  NATS_RECONNECT_MIN_MS: int(250, 10, 60_000),
  NATS_RECONNECT_MAX_MS: int(5_000, 10, 300_000),
  NATS_REQUEST_TIMEOUT_MS: int(5_000, 100, 120_000),
  STREAM_CACHE_TTL_MS: int(30_000, 0, 3_600_000),
  MAX_CONNECTIONS: int(10_000, 1, 1_000_000),
  MAX_CONNECTIONS_PER_CLIENT: int(256, 1, 1_000_000),
  MAX_SUBJECTS: int(16, 1, 256),
  MAX_SUBJECT_LENGTH: int(256, 1, 4096),
  ALLOW_WILDCARDS: bool(true),
  ALLOW_KV: bool(false),
  MAX_LAST: int(1_000, 1, 1_000_000),
  HEARTBEAT_MS: int(15_000, 1_000, 3_600_000),
  RETRY_MS: int(2_000, 0, 3_600_000),
  SHED_RETRY_MS: int(5_000, 0, 3_600_000),
  SESSION_MAX_BUFFER_BYTES: int(1_048_576, 1_024, 1_073_741_824),
  REPLAY_MAX_CONCURRENT: int(64, 1, 100_000),
  REPLAY_MAX_QUEUED: int(10_000, 0, 1_000_000),
  REPLAY_BATCH: int(256, 1, 10_000),
  // A replay whose client's socket has not drained for this long gives its slot back and waits
  // for the socket holding none, in ms; default 5000 (5 s).
  REPLAY_STALL_TIMEOUT_MS: int(5_000, 100, 3_600_000),
  // Replay slots one client address may hold at once; its further replays wait, in replays;
  // default 8.
  REPLAY_MAX_PER_CLIENT: int(8, 1, 100_000),
  // Bytes the shared replay runs of all feeds hold together (frames read once for every
  // session whose cursor is close; one run holds at most a sixteenth); 0 turns sharing off,
  // in bytes; default 67108864 (64 MiB).
  REPLAY_SHARED_BUFFER_BYTES: int(67_108_864, 0, 68_719_476_736),
  // JetStream API calls that client requests cause (cursor checks, replay consumers, `?last=`
  // probes) in flight at once per instance, in calls; default 32.
  JETSTREAM_API_MAX_CONCURRENT: int(32, 1, 10_000),
  // Requests waiting for their first such call; past it the request is shed with a retry hint
  // (later calls of a started request are never refused), in calls; default 10000.
  JETSTREAM_API_MAX_QUEUED: int(10_000, 0, 1_000_000),
  WINDOW_MESSAGES: int(10_000, 0, 1_000_000),
  WINDOW_BYTES: int(8_388_608, 0, 1_073_741_824),
  WINDOW_TOTAL_BYTES: int(268_435_456, 0, 68_719_476_736),
  FEED_LINGER_MS: int(30_000, 0, 3_600_000),
  FEED_LINGER_MAX: int(1_000, 0, 1_000_000),
  FEED_COALESCE_MS: int(2, 0, 100),
  // Feeds per instance (one consumer each), lingering ones included. Default 10000 feeds.
  MAX_FEEDS: int(10_000, 1, 1_000_000),
  // New feeds per second, in bursts of as many. Default 50 feeds/s.
  FEED_CREATE_RATE: int(50, 1, 100_000),
  // Bytes a new feed may read from JetStream to warm its window. Default 1 MiB; 0 reads none.
  FEED_WARMUP_BYTES: int(1_048_576, 0, 1_073_741_824),
  // Idle heartbeat of each feed's consumer. Default 2000 ms.
  FEED_HEARTBEAT_MS: int(2_000, 500, 30_000),
  // How often the watchdog looks at every feed. Default 6000 ms; at least 3 heartbeats.
  FEED_WATCHDOG_MS: int(6_000, 1_500, 600_000),
  // Largest age of the stream state a window may serve from. Default 1000 ms; 0: every time.
  WINDOW_CHECK_MS: int(1_000, 0, 60_000),
  EVENT_TYPE_HEADER: str("SSE-Event"),
  CORS_ORIGINS: list,
  TRUST_PROXY: bool(false),
  /**
   * With TRUST_PROXY: how many proxies stand in front, so the client address is that many
   * entries from the right of `X-Forwarded-For` (default 1: the entry the last proxy added).
   */
  TRUSTED_HOPS: int(1, 1, 16),
  /**
   * Proxies whose `X-Forwarded-For` is believed, as addresses or CIDR ranges (default none).
   * The client address is the rightmost entry not in these ranges.
   */
  TRUSTED_PROXIES: list,
  /** What MAX_CONNECTIONS_PER_CLIENT counts by: auto (default), address, token or none. */
  CLIENT_LIMIT_BY: z
    .enum(["auto", "address", "token", "none"], {
      error: "expected auto, address, token or none",
    })
    .optional()
    .transform((v) => v ?? "auto"),
  /** Subject patterns the gateway serves at all (default: every subject not reserved). */
  SUBJECT_ALLOWLIST: list,
  /** HS256/384/512 shared secret for JWTs; turns authorization on. */
  AUTH_JWT_SECRET: optional,
  /** PEM public key (SPKI) for RS/PS/ES/EdDSA JWTs; turns authorization on. */
  AUTH_JWT_PUBLIC_KEY: optional,
  /** File holding that PEM public key (a mounted Secret); turns authorization on. */
  AUTH_JWT_PUBLIC_KEY_FILE: optional,
  /** JWKS URL; keys are cached and refetched on an unknown `kid`; turns authorization on. */
  AUTH_JWKS_URL: optional,
  /** Accepted JWT algorithms; default: those of the key kind. */
  AUTH_JWT_ALGORITHMS: list,
  /** Required `iss` claim (default: not checked). */
  AUTH_JWT_ISSUER: optional,
  /** Accepted `aud` values; the token's must include one (default: not checked). */
  AUTH_JWT_AUDIENCE: list,
  /** Clock skew allowed on `exp` and `nbf`, in seconds (default 30). */
  AUTH_JWT_LEEWAY_S: int(30, 0, 3_600),
  /** The claim holding the subject patterns a token may read (default `subscribe`). */
  AUTH_JWT_SUBSCRIBE_CLAIM: str("subscribe"),
  /** Longest token accepted, in bytes (default 4096); longer: 401. */
  AUTH_JWT_MAX_BYTES: int(4_096, 256, 65_536),
  /** Cookie carrying the token (for `EventSource` with `withCredentials`); default none. */
  AUTH_COOKIE: optional,
  /** Whether `?access_token=` is accepted (for clients that can set neither header nor cookie). */
  AUTH_QUERY_TOKEN: bool(true),
  /** Subject patterns readable without a token while authorization is on (default none). */
  AUTH_PUBLIC_SUBJECTS: list,
  /** Least time between two JWKS fetches for unknown `kid`s, in ms (default 30000). */
  AUTH_JWKS_COOLDOWN_MS: int(30_000, 1_000, 3_600_000),
  /** Longest a JWKS fetch may take, in ms (default 5000); then the request is shed. */
  AUTH_JWKS_TIMEOUT_MS: int(5_000, 100, 60_000),
  DRAIN_WINDOW_MS: int(10_000, 0, 3_600_000),
  SHUTDOWN_TIMEOUT_MS: int(25_000, 100, 3_600_000),
  HTTP_MAX_HEADER_BYTES: int(16_384, 1_024, 1_048_576),
  HTTP_BACKLOG: int(4_096, 1, 65_535),
  /** Longest query string of `/events`, in bytes; longer: 414 query_too_long. Default 8192. */
  HTTP_MAX_QUERY_BYTES: int(8_192, 256, 1_048_576),
  /** Most query parameters of `/events`; more: 400 too_many_parameters. Default 64. */
  HTTP_MAX_QUERY_PARAMS: int(64, 1, 10_000),
  /**
   * Open sockets on the public port; new ones past it are closed unread. 0 (the default) derives
   * it: MAX_CONNECTIONS + max(1024, MAX_CONNECTIONS / 4), within the open-file limit less min(10 %, 1024).
   */
  HTTP_MAX_SOCKETS: int(0, 0, 10_000_000),
  /**
   * Open sockets on the public port per remote address; 0 (the default) derives it:
   * MAX_CONNECTIONS_PER_CLIENT + max(MAX_CONNECTIONS_PER_CLIENT, 64). Not applied with
   * TRUST_PROXY (every client arrives from the proxy's address).
   */
  HTTP_MAX_SOCKETS_PER_CLIENT: int(0, 0, 10_000_000),
  /** Time to receive a request's line and headers, in ms (default 10000); else 408. */
  HTTP_HEADERS_TIMEOUT_MS: int(10_000, 100, 600_000),
  /** Time to receive a whole request (not its response), in ms (default 30000); else 408. */
  HTTP_REQUEST_TIMEOUT_MS: int(30_000, 100, 3_600_000),
  /** How long an idle keep-alive connection stays open, in ms (default 5000). */
  HTTP_KEEP_ALIVE_TIMEOUT_MS: int(5_000, 100, 3_600_000),
  LOG_LEVEL: logLevel,
  DEMO: bool(false),
  /**
   * One CONSUMER span per batch a feed delivers, linked to each message's publisher span (its
   * `traceparent` header). Only while tracing is on (an `OTEL_*` exporter). Default true.
   */
  TRACE_BATCHES: bool(true),
  /**
   * Spans waiting for export, per exporter; past it spans are dropped and counted
   * (sse_trace_spans_dropped_total). 0 (the default) derives it: 2 × MAX_CONNECTIONS + 2048,
   * room for every session ending at once (its request span and its catch-up span) and batches.
   */
  TRACE_QUEUE_SPANS: int(0, 0, 10_000_000),
});

/** The names of every setting, for documentation checks. */
export const CONFIG_KEYS: readonly string[] = Object.keys(schema.shape);

/** The validated configuration; see the README's settings table for each variable. */
export type Config = Readonly<z.output<typeof schema>>;

/** Thrown when the environment holds bad values; `message` names every one of them. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
  }
}

/** Parses, validates and freezes the configuration from an environment. */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  // Only our own keys are read; empty strings count as unset so `FOO=` falls back to the default.
  const input: Record<string, string | undefined> = {};
  for (const key of Object.keys(schema.shape)) {
    const v = env[key];
    input[key] = v === "" ? undefined : v;
  }
  const parsed = schema.safeParse(input);
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0] ?? "?");
      problems.push(`${name}=${JSON.stringify(input[name] ?? "")}: ${issue.message}`);
    }
    throw new ConfigError(problems);
  }
  const c = parsed.data;
  if (c.NATS_RECONNECT_MIN_MS > c.NATS_RECONNECT_MAX_MS)
    problems.push(
      `NATS_RECONNECT_MIN_MS=${c.NATS_RECONNECT_MIN_MS}: must not exceed NATS_RECONNECT_MAX_MS`,
    );
  if (c.DRAIN_WINDOW_MS >= c.SHUTDOWN_TIMEOUT_MS)
    problems.push(
      `DRAIN_WINDOW_MS=${c.DRAIN_WINDOW_MS}: must be less than SHUTDOWN_TIMEOUT_MS (${c.SHUTDOWN_TIMEOUT_MS})`,
    );
  if (c.MAX_CONNECTIONS_PER_CLIENT > c.MAX_CONNECTIONS)
    problems.push(
      `MAX_CONNECTIONS_PER_CLIENT=${c.MAX_CONNECTIONS_PER_CLIENT}: must not exceed MAX_CONNECTIONS`,
    );
  // Room for every subject and the four start parameters (lastEventId, last, since, from).
  if (c.HTTP_MAX_QUERY_PARAMS < c.MAX_SUBJECTS + 4)
    problems.push(
      `HTTP_MAX_QUERY_PARAMS=${c.HTTP_MAX_QUERY_PARAMS}: must be at least MAX_SUBJECTS + 4 (${c.MAX_SUBJECTS + 4})`,
    );
  if (c.HTTP_MAX_SOCKETS !== 0 && c.HTTP_MAX_SOCKETS < c.MAX_CONNECTIONS)
    problems.push(
      `HTTP_MAX_SOCKETS=${c.HTTP_MAX_SOCKETS}: must be 0 (derived) or at least MAX_CONNECTIONS (${c.MAX_CONNECTIONS})`,
    );
  if (
    c.HTTP_MAX_SOCKETS_PER_CLIENT !== 0 &&
    c.HTTP_MAX_SOCKETS_PER_CLIENT < c.MAX_CONNECTIONS_PER_CLIENT
  )
    problems.push(
      `HTTP_MAX_SOCKETS_PER_CLIENT=${c.HTTP_MAX_SOCKETS_PER_CLIENT}: must be 0 (derived) or at least MAX_CONNECTIONS_PER_CLIENT (${c.MAX_CONNECTIONS_PER_CLIENT})`,
    );
  if (c.HTTP_HEADERS_TIMEOUT_MS > c.HTTP_REQUEST_TIMEOUT_MS)
    problems.push(
      `HTTP_HEADERS_TIMEOUT_MS=${c.HTTP_HEADERS_TIMEOUT_MS}: must not exceed HTTP_REQUEST_TIMEOUT_MS (${c.HTTP_REQUEST_TIMEOUT_MS})`,
    );
  if (c.ADMIN_PORT !== 0 && c.ADMIN_PORT === c.PORT)
    problems.push(`ADMIN_PORT=${c.ADMIN_PORT}: must differ from PORT`);
  if (Boolean(c.NATS_TLS_CERT_FILE) !== Boolean(c.NATS_TLS_KEY_FILE))
    problems.push(
      "NATS_TLS_CERT_FILE, NATS_TLS_KEY_FILE: a client certificate needs both the certificate and its key",
    );
  if (c.FEED_WATCHDOG_MS < 3 * c.FEED_HEARTBEAT_MS)
    problems.push(
      `FEED_WATCHDOG_MS=${c.FEED_WATCHDOG_MS}: must be at least 3 times FEED_HEARTBEAT_MS (${c.FEED_HEARTBEAT_MS})`,
    );
  if (!HTTP_TOKEN.test(c.EVENT_TYPE_HEADER))
    problems.push(
      `EVENT_TYPE_HEADER=${JSON.stringify(c.EVENT_TYPE_HEADER)}: expected a header name`,
    );
  const keys = AUTH_KEYS.filter((k) => c[k]);
  if (keys.length > 1)
    problems.push(`${keys.join(", ")}: set one way to check tokens, not several`);
  if (c.AUTH_JWKS_URL && !/^https?:\/\/[^\s]+$/.test(c.AUTH_JWKS_URL))
    problems.push(`AUTH_JWKS_URL=${JSON.stringify(c.AUTH_JWKS_URL)}: expected an http(s) URL`);
  if (c.AUTH_COOKIE && !HTTP_TOKEN.test(c.AUTH_COOKIE))
    problems.push(`AUTH_COOKIE=${JSON.stringify(c.AUTH_COOKIE)}: expected a cookie name`);
  if (c.CLIENT_LIMIT_BY === "token" && keys.length === 0)
    problems.push(
      "CLIENT_LIMIT_BY=token: needs authorization (AUTH_JWT_SECRET, ..._PUBLIC_KEY or AUTH_JWKS_URL)",
    );
  for (const key of ["SUBJECT_ALLOWLIST", "AUTH_PUBLIC_SUBJECTS"] as const) {
    const parsed = parsePatternList(c[key].join(","));
    if (!parsed.ok) problems.push(`${key}: ${parsed.error}`);
  }
  const cidrs = parseCidrList(c.TRUSTED_PROXIES);
  if (!cidrs.ok) problems.push(`TRUSTED_PROXIES: ${cidrs.error}`);
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(c);
}

/** TRACE_QUEUE_SPANS, or its derived default: 2 × MAX_CONNECTIONS + 2048 spans. */
export function traceQueueSpans(c: Config): number {
  return c.TRACE_QUEUE_SPANS > 0 ? c.TRACE_QUEUE_SPANS : 2 * c.MAX_CONNECTIONS + 2_048;
}

/** True when a way to check tokens is configured: authorization is on. */
export function authEnabled(c: Config): boolean {
  return AUTH_KEYS.some((k) => c[k]);
}
