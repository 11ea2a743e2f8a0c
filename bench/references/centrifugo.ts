/**
 * Centrifugo v6 as a reference server for the benchmarks: a generated config.json in a temp dir,
 * one process listening on 127.0.0.1:<port>, fed by its own built-in JetStream consumer:
 *
 * - `GET /connection/uni_sse?cf_connect={"subs":{"<channel>":{}}}`: a unidirectional SSE
 *   (EventSource) connection subscribed to one channel at connect time (server-side
 *   subscription requested by the client). Every event is `data: <JSON>`: first the connect
 *   reply, then `{"channel":"<channel>","pub":{"data":<payload>,"offset":<n>}}` per message,
 *   the payload embedded as is (so the bench's payloads are JSON strings, see lib/publish.ts);
 * - `GET /readyz`: its health endpoint, moved there for startProcess.
 *
 * The feed: a `nats_jetstream` consumer (durable, deliver policy `new`, explicit acks, as
 * Centrifugo creates it) on the bench subject of its kind, in publication data mode: each
 * message's payload is published to the channels named by its `centrifugo-channels` header. So
 * Centrifugo reads the same JetStream stream the gateway does, with no bridge process; the
 * header is the one thing its messages carry that the others' do not.
 *
 * Bench-only settings, never for production: anonymous connections without a token, and any
 * client may subscribe to any channel without a namespace. Channels keep a history of 10,000
 * messages for an hour with recovery on (what a resume would need, as Nchan's buffer and the
 * gateway's window do); pings every hour (the gateway runs with HEARTBEAT_MS=3600000); usage
 * statistics off (loopback only).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { DIST, startProcess, type ServerProc } from "../lib/procs";

/** The Centrifugo release `make bench` installs (scripts/ensure-tools.sh pins the same). */
export const CENTRIFUGO_VERSION = "v6.9.1";

/** The centrifugo binary, or why it cannot be used (`make bench` builds it). */
export function findCentrifugo(): { bin: string } | { missing: string } {
  const bin =
    process.env.CENTRIFUGO_BIN ??
    [path.resolve(DIST, "..", ".tools", "bin", "centrifugo")].find((p) => existsSync(p)) ??
    (spawnSync("sh", ["-c", "command -v centrifugo"], { encoding: "utf8" }).stdout.trim() ||
      undefined);
  if (!bin)
    return {
      missing: `centrifugo not found (scripts/ensure-tools.sh bench builds ${CENTRIFUGO_VERSION} into .tools/bin)`,
    };
  return { bin };
}

/** Where Centrifugo's consumer reads from. */
export interface CentrifugoFeed {
  natsUrl: string;
  stream: string;
  subject: string;
  /** The durable consumer it creates on the stream: a name of its own per run. */
  durable: string;
}

/** Options of a bench instance. */
export interface CentrifugoOptions {
  /**
   * Serve Prometheus metrics on `GET /metrics` (the memory scenario reads its Go heap there).
   * Default false: metrics cost CPU on every message, which the other kinds do not pay.
   */
  metrics?: boolean;
}

/** The config.json of one bench instance listening on 127.0.0.1:`port`. */
export function centrifugoConf(
  port: number,
  feed: CentrifugoFeed,
  o: CentrifugoOptions = {},
): object {
  return {
    log: { level: "error" },
    prometheus: { enabled: o.metrics ?? false },
    http_server: { address: "127.0.0.1", port },
    health: { enabled: true, handler_prefix: "/readyz" },
    usage_stats: { disabled: true },
    client: {
      // Bench only: no token, anonymous users.
      allow_anonymous_connect_without_token: true,
      // Like the gateway's HEARTBEAT_MS=3600000: no keep-alive traffic while measuring.
      ping_interval: "1h",
      pong_timeout: "10s",
    },
    channel: {
      without_namespace: {
        // Bench only: anyone may subscribe, no subscription token.
        allow_subscribe_for_client: true,
        allow_subscribe_for_anonymous: true,
        history_size: 10000,
        history_ttl: "1h",
        force_recovery: true,
      },
    },
    uni_sse: { enabled: true },
    consumers: [
      {
        name: "jetstream",
        enabled: true,
        type: "nats_jetstream",
        nats_jetstream: {
          url: feed.natsUrl,
          stream_name: feed.stream,
          subjects: [feed.subject],
          durable_consumer_name: feed.durable,
          deliver_policy: "new",
          // A whole burst (100 messages by default) and then some may await their ack.
          max_ack_pending: 1000,
          publication_data_mode: { enabled: true, channels_header: "centrifugo-channels" },
        },
      },
    ],
  };
}

/** The URL path of a uni_sse connection subscribed to `channel`. */
export function centrifugoPath(channel: string): string {
  return `/connection/uni_sse?cf_connect=${encodeURIComponent(JSON.stringify({ subs: { [channel]: {} } }))}`;
}

/**
 * The Go heap and goroutine stacks in use of the instance on `port`, in bytes
 * (`go_memstats_heap_inuse_bytes` + `go_memstats_stack_inuse_bytes` of its Prometheus metrics;
 * NaN unless started with `metrics`): its RSS also holds freed memory the Go runtime has not
 * returned to the OS yet, and garbage not yet collected (the heap may grow to twice the live
 * data by default).
 */
export async function centrifugoGoInUse(port: number): Promise<number> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const read = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
    return read("go_memstats_heap_inuse_bytes") + read("go_memstats_stack_inuse_bytes");
  } catch {
    return NaN;
  }
}

/** Starts Centrifugo on `port`; its temp dir is removed once it has exited. */
export async function startCentrifugo(
  port: number,
  feed: CentrifugoFeed,
  o: CentrifugoOptions = {},
): Promise<ServerProc> {
  const found = findCentrifugo();
  if ("missing" in found) throw new Error(`centrifugo: ${found.missing}`);
  const dir = mkdtempSync(path.join(os.tmpdir(), "bench-centrifugo-"));
  const conf = path.join(dir, "config.json");
  writeFileSync(conf, JSON.stringify(centrifugoConf(port, feed, o), null, 2));
  return startProcess(found.bin, ["--config", conf], port, {
    stderrFile: path.join(dir, "stderr.log"),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  });
}
