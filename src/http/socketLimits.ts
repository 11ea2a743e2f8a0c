import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import type { Socket } from "node:net";
import type { Config } from "../config";
import { isPublicAddress, isTrusted, parseCidrList } from "./clientAddress";
import type { Metrics } from "../telemetry/metrics";

/** The socket bounds of the public port in force, and what an operator should know about them. */
export interface SocketBounds {
  /** Open sockets in total. */
  maxSockets: number;
  /**
   * Open sockets per remote address; undefined when not applied (CLIENT_LIMIT_BY `token` or
   * `none`, or TRUST_PROXY).
   */
  maxPerClient: number | undefined;
  /** Remote addresses the per-address bound does not apply to (TRUSTED_PROXIES; in auto, private ones). */
  exempt?: (address: string) => boolean;
  /** Warnings worth a log line at start-up. */
  warnings: string[];
}

/**
 * Descriptors the public port leaves for the admin port, NATS and files, so a flood can never
 * leave the probes without one: 10 % of the open-file limit, at most {@link FD_RESERVE_MAX}
 * (a fixed share would keep 2,000 of 20,000 and 100,000 of a million idle).
 */
const FD_RESERVE_SHARE = 0.1;
const FD_RESERVE_MAX = 1_024;

/** Sockets the public port may hold within an open-file limit. */
export function fdBoundOf(openFiles: number): number {
  return openFiles - Math.min(Math.ceil(openFiles * FD_RESERVE_SHARE), FD_RESERVE_MAX);
}

/**
 * Works out the public port's socket bounds from the settings and the process's open-file
 * limit (`undefined` when unknown or unlimited). Pure.
 *
 * Every socket is a file descriptor. Without a bound, ~20,000 sockets that never finish their
 * headers exhaust them, and then every new connection of the process is reset, the admin
 * port's probes included, until the sockets time out: the kubelet restarts the pod.
 */
export function socketBounds(config: Config, openFiles: number | undefined): SocketBounds {
  const warnings: string[] = [];
  const fdBound = openFiles === undefined ? Infinity : fdBoundOf(openFiles);
  let maxSockets = config.HTTP_MAX_SOCKETS;
  if (maxSockets === 0) {
    const headroom = Math.max(1_024, Math.ceil(config.MAX_CONNECTIONS / 4));
    maxSockets = Math.min(config.MAX_CONNECTIONS + headroom, fdBound);
    if (maxSockets < config.MAX_CONNECTIONS)
      warnings.push(
        `the open-file limit (${openFiles}) allows ${maxSockets} sockets on the public port, ` +
          `fewer than MAX_CONNECTIONS (${config.MAX_CONNECTIONS}): raise the limit (ulimit -n)`,
      );
  } else if (maxSockets > fdBound) {
    warnings.push(
      `HTTP_MAX_SOCKETS=${maxSockets} is above the ${fdBound} sockets the open-file limit ` +
        `(${openFiles}) leaves room for: a flood can exhaust file descriptors and fail the probes`,
    );
  }
  // Per address only where an address is a client: with CLIENT_LIMIT_BY address or auto, not
  // behind TRUST_PROXY (sockets come from the proxy); TRUSTED_PROXIES' peers are exempt, and
  // so, in auto, are private peers (an ingress or load balancer).
  const byAddress = config.CLIENT_LIMIT_BY === "address" || config.CLIENT_LIMIT_BY === "auto";
  const maxPerClient =
    !byAddress || config.TRUST_PROXY
      ? undefined
      : config.HTTP_MAX_SOCKETS_PER_CLIENT ||
        // Room for the client's streams, and as many again (at least 64) for requests it makes
        // meanwhile: shed and refused ones, kept-alive connections.
        config.MAX_CONNECTIONS_PER_CLIENT + Math.max(config.MAX_CONNECTIONS_PER_CLIENT, 64);
  const proxies = parseCidrList(config.TRUSTED_PROXIES);
  const trusted = proxies.ok ? proxies.value : undefined;
  const auto = config.CLIENT_LIMIT_BY === "auto";
  const exempt =
    maxPerClient === undefined || (!trusted && !auto)
      ? undefined
      : (address: string) =>
          (trusted !== undefined && isTrusted(trusted, address)) ||
          (auto && !isPublicAddress(address));
  return { maxSockets, maxPerClient, exempt, warnings };
}

/** The soft limit on open files of this process (Linux), or undefined when unknown or unlimited. */
export function openFileLimit(path = "/proc/self/limits"): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync(path, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

// Per socket: the address it counts against (read at accept: the peer may be gone at close),
// and its limits, so one close listener serves all sockets without a closure per socket.
const ADDRESS = Symbol("address");
const LIMITS = Symbol("limits");
type Counted = Socket & { [ADDRESS]?: string; [LIMITS]?: SocketLimits };
function onSocketClose(this: Counted): void {
  this[LIMITS]?.closed(this);
}

/**
 * Holds the public port's open sockets within their bounds. Past the total, Node closes new
 * sockets before it builds anything for them (`server.maxConnections`); past the per-address
 * bound they are reset at once. Neither reads a byte or writes an answer: under a flood that is
 * the cheapest move, and a browser's `EventSource` retries a network error by itself, whereas
 * any non-200 status would make it give up for good (DESIGN invariant 7).
 */
export class SocketLimits {
  /** Open sockets of the public port, for the flush at shutdown. */
  readonly open = new Set<Socket>();
  private readonly perAddress = new Map<string, number>();

  constructor(
    server: Server,
    private readonly bounds: SocketBounds,
    private readonly metrics: Metrics,
  ) {
    server.maxConnections = bounds.maxSockets;
    metrics.httpSocketsMax.set(bounds.maxSockets);
    server.on("drop", () => metrics.httpSocketsRefused.inc({ reason: "total" }));
    server.on("connection", (socket: Counted) => {
      const max = this.bounds.maxPerClient;
      const address = socket.remoteAddress ?? "unknown";
      if (max !== undefined && !this.bounds.exempt?.(address)) {
        const n = this.perAddress.get(address) ?? 0;
        if (n >= max) {
          this.metrics.httpSocketsRefused.inc({ reason: "per_client" });
          socket.resetAndDestroy();
          return;
        }
        this.perAddress.set(address, n + 1);
        socket[ADDRESS] = address;
      }
      this.open.add(socket);
      this.metrics.httpSockets.inc();
      socket[LIMITS] = this;
      socket.on("close", onSocketClose); // `once` would wrap it in a closure per socket
    });
  }

  /**
   * Resolves once every open socket has handed what it buffered to the kernel (so a `retry:`
   * written just before reaches the client even if the process exits next), or after
   * `timeoutMs`, whichever comes first. For shutdown only: it polls.
   */
  async flushed(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const pending = () => {
      for (const s of this.open) if (!s.destroyed && s.writableLength > 0) return true;
      return false;
    };
    while (pending() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  /** A counted socket closed: its place is free again. */
  closed(socket: Counted): void {
    if (!this.open.delete(socket)) return;
    this.metrics.httpSockets.dec();
    const address = socket[ADDRESS];
    if (address === undefined) return;
    const left = (this.perAddress.get(address) ?? 1) - 1;
    if (left <= 0) this.perAddress.delete(address);
    else this.perAddress.set(address, left);
  }
}
