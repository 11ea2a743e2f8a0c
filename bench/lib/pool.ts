import type { ChildProcess } from "node:child_process";
import { Histogram } from "./histogram";
import type { WorkerCommand, WorkerReport } from "./loadWorker";
import { cpuMs, forkWorker } from "./procs";

type Of<T extends WorkerReport["type"]> = Extract<WorkerReport, { type: T }>;

/** Load-client processes sharing the connections of one benchmark run. */
export class LoadPool {
  private readonly workers: ChildProcess[] = [];

  constructor(size: number) {
    for (let i = 0; i < size; i++) this.workers.push(forkWorker());
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
   * Opens one connection per cursor (null: a fresh connection), spread over the workers.
   * `localAddresses`: loopback source addresses to bind the sockets to (default none: the
   * kernel's choice, 127.0.0.1); address j goes to worker j mod workers, so no two workers share
   * one unless there are fewer addresses than workers.
   */
  async open(
    port: number,
    path: string,
    cursors: Array<number | null>,
    batch: number,
    localAddresses: string[] = [],
  ): Promise<{ ok: number; failed: number; statuses: Record<string, number> }> {
    const parts = this.split(cursors);
    const from = localAddresses.length >= this.workers.length ? this.split(localAddresses) : [];
    const reports = await this.ask(
      "opened",
      parts.map(
        (p, i) =>
          ({
            cmd: "open",
            host: "127.0.0.1",
            port,
            path,
            cursors: p,
            batch,
            localAddresses: from[i] ?? localAddresses,
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

  /** Waits until every client got `expect` messages of `round`; merges latencies. */
  async round(round: number, expect: number, timeoutMs: number) {
    const reports = await this.ask("round", [{ cmd: "round", round, expect, timeoutMs }]);
    const hist = new Histogram();
    for (const r of reports) hist.merge(r.hist);
    return {
      complete: reports.reduce((n, r) => n + r.complete, 0),
      deliveries: reports.reduce((n, r) => n + r.deliveries, 0),
      lastAt: Math.max(...reports.map((r) => r.lastAt)),
      hist,
    };
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
