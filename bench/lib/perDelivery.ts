/**
 * CPU per delivery, the figure every scenario compares kinds by, and the gateway's ratios to
 * its peers.
 */
import type { CpuMark } from "./contenders";
import { median } from "./histogram";
import type { Kind } from "./kinds";
import { fmt, ratio } from "./report";

/** CPU per delivery in µs over one round. */
export interface PerDelivery {
  /** The server process alone (nginx alone for nchan, without its bridge). */
  server: number;
  /** With its bridge process, where it has one (nchan's); else the same as `server`. */
  withBridge: number;
  /** Server, bridge and nats-server together (NaN when nats-server's pid is unknown). */
  withNats: number;
  bridge: number;
  /** The load clients (the instrument, not the server). */
  clients: number;
}

export function perDelivery(cpu: CpuMark, deliveries: number): PerDelivery {
  const per = (ms: number) => (ms * 1000) / Math.max(1, deliveries);
  return {
    server: per(cpu.server),
    withBridge: per(cpu.server + cpu.bridge),
    withNats: per(cpu.server + cpu.bridge + cpu.nats),
    bridge: per(cpu.bridge),
    clients: per(cpu.clients),
  };
}

/** The median of each figure over rounds. */
export function medianPerDelivery(rounds: PerDelivery[]): PerDelivery {
  const m = (f: (p: PerDelivery) => number) => median(rounds.map(f));
  return {
    server: m((p) => p.server),
    withBridge: m((p) => p.withBridge),
    withNats: m((p) => p.withNats),
    bridge: m((p) => p.bridge),
    clients: m((p) => p.clients),
  };
}

/** `server CPU … µs/delivery (with nats-server …)`, and the bridge's share when it has one. */
export function cpuText(kind: Kind, p: PerDelivery): string {
  const bridge =
    kind === "nchan"
      ? `   bridge CPU ${fmt(p.bridge, 2)} µs/delivery (nginx + bridge ${fmt(p.withBridge, 2)}; the nats-server figure includes the bridge)`
      : "";
  return `server CPU ${fmt(p.server, 2)} µs/delivery (with nats-server ${fmt(p.withNats, 2)}, clients ${fmt(p.clients, 2)})${bridge}`;
}

/** What the gateway is compared to its peers by, per kind. */
export interface PeerRow {
  cpu: PerDelivery;
  p99: number;
}

/**
 * One line per peer present: gateway/peer CPU per delivery (server alone; for nchan also with
 * its bridge), with nats-server, and p99 latency. Below 1: the gateway spends less.
 */
export function peerRatioLines(rows: Partial<Record<Kind, PeerRow>>): string[] {
  const g = rows.gateway;
  if (!g) return [];
  const lines: string[] = [];
  for (const peer of ["nchan", "centrifugo"] as const) {
    const p = rows[peer];
    if (!p) continue;
    const bridge =
      peer === "nchan" ? ` (nginx + bridge ${ratio(g.cpu.server, p.cpu.withBridge)})` : "";
    lines.push(
      `gateway/${peer}: CPU per delivery ${ratio(g.cpu.server, p.cpu.server)}${bridge}   with nats-server ${ratio(g.cpu.withNats, p.cpu.withNats)}   p99 ${ratio(g.p99, p.p99)}`,
    );
  }
  return lines;
}
