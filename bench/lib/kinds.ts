/**
 * The servers the bench compares, by kind, and how to start each against the bench's stream:
 *
 * - `gateway`: this project (dist/src/main.js);
 * - `naive`, `ideal`, `idle`: bare node:http references (bench/references/bareServer.ts);
 * - `nchan`: nginx + Nchan fed by a bridge process (references/nchan.ts, nchanBridge.ts);
 * - `centrifugo`: Centrifugo v6 with its own JetStream consumer (references/centrifugo.ts).
 */
import { randomBytes } from "node:crypto";
import { freePort } from "../../test/support/ports";
import { centrifugoPath, findCentrifugo, startCentrifugo } from "../references/centrifugo";
import { findNchan, startNchan } from "../references/nchan";
import { STREAM, type Ctx } from "./ctx";
import { MESSAGES } from "./options";
import type { Source } from "./pool";
import { imageNodeOptions } from "./imageNodeOptions";
import { startServer, type ServerProc } from "./procs";
import type { PublishOptions } from "./publish";
import { log } from "./report";

export type Kind = "gateway" | "naive" | "ideal" | "idle" | "nchan" | "centrifugo";

/** The peers: servers of other projects, compared where installed. */
export type Peer = "nchan" | "centrifugo";

/**
 * The third octet of each kind's loopback source addresses, 127.0.<octet>.<worker + 1> (see
 * {@link Source}): 127.0.1.x for the gateway, 127.0.2.x naive, 127.0.3.x ideal, 127.0.4.x
 * nchan, 127.0.5.x centrifugo, 127.0.6.x idle.
 */
const OCTET: Record<Kind, number> = {
  gateway: 1,
  naive: 2,
  ideal: 3,
  nchan: 4,
  centrifugo: 5,
  idle: 6,
};

/** Where `kind`'s load clients connect from; their group is the kind. */
export function sourceOf(kind: Kind): Source {
  return { group: kind, octet: OCTET[kind] };
}

/** The request path of an SSE subscription to `subject` on `kind`. */
export function eventsPath(kind: Kind, subject: string): string {
  return kind === "centrifugo" ? centrifugoPath(subject) : `/events/${subject}`;
}

/** How messages for `kind` are published on `subject`: Centrifugo's carry its channel. */
export function publishOptionsOf(kind: Kind, subject: string): PublishOptions {
  return kind === "centrifugo" ? { channel: subject } : {};
}

/** Whether `peer` is installed; logs why not (once per call) when it is not. */
export function peerAvailable(peer: Peer): boolean {
  const found = peer === "nchan" ? findNchan() : findCentrifugo();
  if ("missing" in found) log(`${peer}: left out: ${found.missing}`);
  return !("missing" in found);
}

/**
 * The kinds of the fan-out and steady scenarios: gateway, naive and ideal, and the peers that
 * are installed (`make bench` installs them).
 */
export function comparedKinds(): Kind[] {
  const kinds: Kind[] = ["gateway", "naive", "ideal"];
  for (const peer of ["nchan", "centrifugo"] as const) if (peerAvailable(peer)) kinds.push(peer);
  return kinds;
}

/**
 * Starts a server of `kind` serving `subject` (with `extra` env for the gateway; for
 * centrifugo, `{ METRICS: "true" }` turns its Prometheus endpoint on); `burst` is the ideal
 * reference's write size in messages.
 */
export async function startKind(
  kind: Kind,
  ctx: Ctx,
  subject: string,
  extra: Record<string, string> = {},
  burst = MESSAGES,
): Promise<ServerProc> {
  const port = await freePort();
  if (kind === "nchan") {
    // nginx + Nchan, and the bridge feeding its publisher location from the same JetStream
    // subject (one ordered consumer, pipelined HTTP POSTs over one keep-alive connection).
    const nginx = await startNchan(port);
    try {
      const bridge = await startServer(
        "bench/references/nchanBridge.js",
        { NATS_URL: ctx.nats.url, STREAM, SUBJECT: subject, NCHAN_PORT: String(port) },
        await freePort(),
      );
      return {
        ...nginx,
        bridge,
        stop: async () => {
          await bridge.stop();
          await nginx.stop();
        },
      };
    } catch (err) {
      await nginx.stop();
      throw err;
    }
  }
  if (kind === "centrifugo") {
    const durable = `bench-centrifugo-${randomBytes(4).toString("hex")}`;
    const server = await startCentrifugo(
      port,
      { natsUrl: ctx.nats.url, stream: STREAM, subject, durable },
      { metrics: extra.METRICS === "true" },
    );
    return {
      ...server,
      stop: async () => {
        await server.stop();
        // Its durable consumer outlives it: gone, so that later scenarios (the storms count
        // the stream's consumers) start from the stream they expect.
        await ctx.jsm.consumers.delete(STREAM, durable).catch(() => undefined);
      },
    };
  }
  if (kind === "gateway") {
    const adminPort = await freePort();
    const server = await startServer(
      "src/main.js",
      {
        NATS_URL: ctx.nats.url,
        ADMIN_PORT: String(adminPort),
        LOG_LEVEL: "warn",
        // As the image runs it (the young generation's bound shows in memory per connection).
        NODE_OPTIONS: imageNodeOptions(),
        MAX_CONNECTIONS: "50000",
        MAX_CONNECTIONS_PER_CLIENT: "50000",
        // The load clients of a kind share a few source addresses: they stand for distinct
        // browsers.
        REPLAY_MAX_PER_CLIENT: "50000",
        HEARTBEAT_MS: "3600000",
        DRAIN_WINDOW_MS: "0",
        ...extra,
      },
      port,
      adminPort,
    );
    server.adminPort = adminPort;
    return server;
  }
  return startServer(
    "bench/references/bareServer.js",
    { NATS_URL: ctx.nats.url, MODE: kind, STREAM, SUBJECT: subject, BURST: String(burst) },
    port,
  );
}
