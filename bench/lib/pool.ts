import { spawnSync, type ChildProcess } from "node:child_process";
import { Histogram } from "./histogram";
import type { WorkerCommand, WorkerReport } from "./loadWorker";
import { cpuMs, forkWorker } from "./procs";

type Of<T extends WorkerReport["type"]> = Extract<WorkerReport, { type: T }>;

/**
 * Where a group of connections comes from: the group (the kind of server) a round waits for,
 * and the third octet of its loopback source addresses, 127.0.<octet>.<worker + 1>: one address
 * per worker and kind, so the server sees each kind's load as distinct clients, and each
 * (address, server port) pair has the whole ephemeral port range to itself.
 */
export interface Source {
  group: string;
  octet: number;
}

/** All connections from 127.0.0.1 in one group, for scenarios with one server. */
export const DEFAULT_SOURCE: Source = { group: "", octet: 0 };

/** The open-file limit of this process's children (`ulimit -n`), 1024 if unreadable. */
function openFileLimit(): number {
  const n = Number(spawnSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" }).stdout.trim());
  return Number.isFinite(n) && n > 0 ? n : 1024;
}

/** Load-client processes sharing the connections of one benchmark run. */
export class LoadPool {
  private readonly workers: ChildProcess[] = [];

  constructor(size: number) {
    for (let i = 0; i < size; i++) this.workers.push(forkWorker());
  }

  /**
   * A pool of at least `min` workers, more when needed so that none holds more than its
   * open-file limit allows for `sockets` connections in all (1,000 descriptors kept spare).
   */
  static sized(min: number, sockets: number): LoadPool {
    const perWorker = Math.max(1000, openFileLimit() - 1000);
    return new LoadPool(Math.max(min, Math.ceil(sockets / perWorker)));
  }

  get size(): number {
    return this.workers.length;
  }

  private ask<T extends WorkerReport["type"]>(
    type: T,
    cmds: WorkerCommand[],
  ): Promise<Array<Of<T>>> {
    return Promise.all(
      this.workers.map(
        (w, i) =>
          new Promise<Of<T>>((resolve, reject) => {
            const on = (m: WorkerReport) => {
              if (m.type === "error") reject(new Error(m.message));
              else if (m.type === type) {
                w.off("message", on);
                resolve(m as Of<T>);
              }
            };
            w.on("message", on);
            w.send((cmds[i] ?? cmds[0]) as WorkerCommand);
          }),
      ),
    );
  }

  /** Item j goes to worker j mod workers, in order: the way `open` spreads its cursors. */
  private split<T>(items: T[]): T[][] {
    return this.workers.map((_, i) => items.filter((_, j) => j % this.workers.length === i));
  }

  /**
   * Extra request headers for the connections of the next {@link open}, one entry per cursor in
   * the same order (e.g. `{ Authorization: "Bearer …" }` per client). Each worker gets only its
   * share, before the clock of the caller starts.
   */
  async headers(perClient: Array<Record<string, string> | undefined>): Promise<void> {
    const blocks = perClient.map((h) =>
      h
        ? Object.entries(h)
            .map(([k, v]) => {
              if (/[\r\n]/.test(k + v)) throw new Error(`header ${k}: no line breaks allowed`);
              return `${k}: ${v}\r\n`;
            })
            .join("")
        : "",
    );
    await this.ask(
      "headers",
      this.split(blocks).map((p) => ({ cmd: "headers", headers: p }) as WorkerCommand),
    );
  }

  /**
   * Opens one connection per cursor (null: a fresh connection), spread over the workers, `batch`
   * in flight per worker (0: all at once), from `source`'s addresses, or, when given,
   * `localAddresses`: loopback source addresses to bind the sockets to; address j goes to worker
   * j mod workers, so no two workers share one unless there are fewer addresses than workers.
   */
  async open(
    port: number,
    path: string,
    cursors: Array<number | null>,
    batch: number,
    source: Source = DEFAULT_SOURCE,
    localAddresses: string[] = [],
  ): Promise<{ ok: number; failed: number; statuses: Record<string, number> }> {
    const from = localAddresses.length >= this.workers.length ? this.split(localAddresses) : [];
    const reports = await this.ask(
      "opened",
      this.split(cursors).map(
        (p, w) =>
          ({
            cmd: "open",
            host: "127.0.0.1",
            port,
            path,
            cursors: p,
            batch,
            group: source.group,
            localAddress: source.octet > 0 ? `127.0.${source.octet}.${w + 1}` : undefined,
            localAddresses: from[w] ?? localAddresses,
          }) as WorkerCommand,
      ),
    );
    const statuses: Record<string, number> = {};
    for (const r of reports)
      for (const [k, v] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
    return {
      ok: reports.reduce((n, r) => n + r.ok, 0),
      failed: reports.reduce((n, r) => n + r.failed, 0),
      statuses,
    };
  }

  /**
   * Waits until every client of `group` got `expect` messages of `round`, or had its connection
   * closed (or `timeoutMs`); merges latencies.
   */
  async round(round: number, expect: number, timeoutMs: number, group = "") {
    const reports = await this.ask("round", [{ cmd: "round", round, expect, timeoutMs, group }]);
    const hist = new Histogram();
    for (const r of reports) hist.merge(r.hist);
    return {
      complete: reports.reduce((n, r) => n + r.complete, 0),
      closed: reports.reduce((n, r) => n + r.closed, 0),
      all: reports.reduce((n, r) => n + r.all, 0),
      deliveries: reports.reduce((n, r) => n + r.deliveries, 0),
      lastAt: Math.max(...reports.map((r) => r.lastAt)),
      hist,
    };
  }

  /**
   * Waits until no client of `group` has received anything for `quietMs` (a server that fell
   * behind has worked off its backlog), at most `timeoutMs`; whether it got quiet.
   */
  async quiet(group: string, quietMs: number, timeoutMs: number): Promise<boolean> {
    const reports = await this.ask("quiet", [{ cmd: "quiet", group, quietMs, timeoutMs }]);
    return reports.every((r) => r.quiet);
  }

  /** Waits until every client has received up to `target` (catch-up after a resume). */
  async catchup(target: number, timeoutMs: number) {
    const reports = await this.ask("caughtUp", [{ cmd: "catchup", target, timeoutMs }]);
    return {
      complete: reports.reduce((n, r) => n + r.complete, 0),
      deliveries: reports.reduce((n, r) => n + r.deliveries, 0),
      duplicates: reports.reduce((n, r) => n + r.duplicates, 0),
      gaps: reports.reduce((n, r) => n + r.gaps, 0),
      lastAt: Math.max(...reports.map((r) => r.lastAt)),
    };
  }

  /** CPU the load clients have used so far, in ms. */
  cpuMs(): number {
    return this.workers.reduce((n, w) => n + cpuMs(w.pid as number), 0);
  }

  close(): void {
    for (const w of this.workers) {
      w.send({ cmd: "close" } satisfies WorkerCommand);
      setTimeout(() => w.kill("SIGKILL"), 2000).unref();
    }
  }
}
