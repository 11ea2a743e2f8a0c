import type { IncomingMessage } from "node:http";
import { BlockList, isIP } from "node:net";

/**
 * How far the gateway believes `X-Forwarded-For` (TRUST_PROXY, TRUSTED_HOPS, TRUSTED_PROXIES;
 * TRUSTED_PROXIES, when set, takes precedence).
 */
export interface ProxyTrust {
  /** Believe the header from any peer, `hops` entries from the right (TRUST_PROXY). */
  trustProxy: boolean;
  /** Proxies in front when `trustProxy` (TRUSTED_HOPS, default 1). */
  hops: number;
  /** Believe the header only from these peers, skipping them from the right (TRUSTED_PROXIES). */
  proxies: BlockList | undefined;
}

/** A request's client address, and whether a trusted proxy vouched for it. */
export interface ClientAddress {
  address: string;
  /**
   * True when the address came from `X-Forwarded-For` as written by a trusted proxy: it names
   * the client, not a proxy, so per-client limits may key on it.
   */
  viaProxy: boolean;
}

/** Parses TRUSTED_PROXIES: addresses and CIDR ranges, IPv4 or IPv6. Pure. */
export function parseCidrList(
  entries: readonly string[],
): { ok: true; value: BlockList | undefined } | { ok: false; error: string } {
  if (entries.length === 0) return { ok: true, value: undefined };
  const list = new BlockList();
  for (const entry of entries) {
    const [addr, prefix, extra] = entry.split("/");
    const type = isIP(addr ?? "");
    const bits = prefix === undefined ? (type === 6 ? 128 : 32) : Number(prefix);
    if (
      type === 0 ||
      extra !== undefined ||
      !Number.isInteger(bits) ||
      bits < 0 ||
      bits > (type === 6 ? 128 : 32)
    )
      return { ok: false, error: `"${entry}" is not an address or a CIDR range (e.g. 10.0.0.0/8)` };
    list.addSubnet(addr as string, bits, type === 6 ? "ipv6" : "ipv4");
  }
  return { ok: true, value: list };
}

/** `::ffff:10.1.2.3` (an IPv4 peer on a dual-stack socket) is `10.1.2.3`. */
function plain(address: string): string {
  return address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

// Loopback, private, link-local, shared (CGNAT) and unique-local ranges: what the peers of a
// gateway behind a load balancer or an ingress look like (pod and node addresses).
const NON_PUBLIC = (() => {
  const list = new BlockList();
  for (const [net, bits] of [
    ["10.0.0.0", 8],
    ["172.16.0.0", 12],
    ["192.168.0.0", 16],
    ["127.0.0.0", 8],
    ["169.254.0.0", 16],
    ["100.64.0.0", 10],
  ] as const)
    list.addSubnet(net, bits, "ipv4");
  for (const [net, bits] of [
    ["::1", 128],
    ["fc00::", 7],
    ["fe80::", 10],
  ] as const)
    list.addSubnet(net, bits, "ipv6");
  return list;
})();

/**
 * True for a globally routable address: a peer that is such an address is a client itself,
 * not a proxy or load balancer inside the cluster.
 */
export function isPublicAddress(address: string): boolean {
  const a = plain(address);
  return isIP(a) !== 0 && !contains(NON_PUBLIC, a);
}

/** True when `address` (plain or IPv4-mapped) is in `list`. */
export function isTrusted(list: BlockList, address: string): boolean {
  return contains(list, plain(address));
}

function contains(list: BlockList, address: string): boolean {
  const type = isIP(address);
  return type !== 0 && list.check(address, type === 6 ? "ipv6" : "ipv4");
}

/**
 * The client address of a request. Without proxy settings it is the socket's peer. With
 * TRUSTED_PROXIES, a peer in those ranges is a proxy: the client is the rightmost
 * `X-Forwarded-For` entry that is not one of them (entries further left were written by the
 * client itself and can be forged). With TRUST_PROXY, any peer is a proxy and the client is the
 * entry TRUSTED_HOPS from the right. An entry that is not an IP address is not believed.
 */
export function clientAddress(req: IncomingMessage, trust: ProxyTrust): ClientAddress {
  const peer = plain(req.socket.remoteAddress ?? "unknown");
  const direct = { address: peer, viaProxy: false };
  // TRUSTED_PROXIES, when set, decides alone which peers are proxies.
  const proxied = trust.proxies ? contains(trust.proxies, peer) : trust.trustProxy;
  if (!proxied) return direct;
  const raw = req.headers["x-forwarded-for"];
  const entries = (Array.isArray(raw) ? raw.join(",") : (raw ?? ""))
    .split(",")
    .map((s) => plain(s.trim()))
    .filter(Boolean);
  if (entries.length === 0) return direct;
  let pick: string | undefined;
  if (trust.proxies) {
    for (let i = entries.length - 1; i >= 0 && pick === undefined; i--)
      if (!contains(trust.proxies, entries[i] as string)) pick = entries[i];
  } else pick = entries[Math.max(0, entries.length - trust.hops)];
  return pick !== undefined && isIP(pick) !== 0 ? { address: pick, viaProxy: true } : direct;
}

/** The proxy trust the settings describe. */
export function proxyTrust(c: {
  TRUST_PROXY: boolean;
  TRUSTED_HOPS: number;
  TRUSTED_PROXIES: readonly string[];
}): ProxyTrust {
  const parsed = parseCidrList(c.TRUSTED_PROXIES);
  return {
    trustProxy: c.TRUST_PROXY,
    hops: c.TRUSTED_HOPS,
    proxies: parsed.ok ? parsed.value : undefined,
  };
}
