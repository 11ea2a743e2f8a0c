import { readFileSync } from "node:fs";

/** The kernel's counters of connections its accept queues turned away (Linux /proc/net/netstat). */
export interface ListenDrops {
  /** A SYN or handshake's last ACK arrived while the accept queue (the listen backlog) was full. */
  overflows: number;
  /** Every connection request dropped at a listening socket, overflows included. */
  drops: number;
}

/**
 * TcpExt ListenOverflows and ListenDrops of this network namespace, NaN when unreadable. They
 * count for every listening socket of the namespace: another program's overflows show too.
 */
export function listenDrops(path = "/proc/net/netstat"): ListenDrops {
  try {
    const lines = readFileSync(path, "utf8").split("\n");
    const i = lines.findIndex((l) => l.startsWith("TcpExt:"));
    const names = (lines[i] ?? "").split(/\s+/);
    const values = (lines[i + 1] ?? "").split(/\s+/);
    const get = (name: string) => Number(values[names.indexOf(name)] ?? NaN);
    return { overflows: get("ListenOverflows"), drops: get("ListenDrops") };
  } catch {
    return { overflows: NaN, drops: NaN };
  }
}
