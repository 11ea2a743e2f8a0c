/**
 * Memory per idle connection: each kind alone (gateway, bare node:http, and the peers that are
 * installed), `clients` connections held; RSS growth of the server process over them.
 */
import type { Ctx } from "../lib/ctx";
import { median } from "../lib/histogram";
import { centrifugoGoInUse } from "../references/centrifugo";
import { eventsPath, peerAvailable, sourceOf, startKind, type Kind } from "../lib/kinds";
import { WORKERS } from "../lib/options";
import { LoadPool } from "../lib/pool";
import { rss, sleep } from "../lib/procs";
import { fmt, log, ratio } from "../lib/report";

const LABEL: Partial<Record<Kind, string>> = {
  gateway: "gateway",
  idle: "bare node:http",
  nchan: "nginx + Nchan",
  centrifugo: "Centrifugo",
};

export async function memory(ctx: Ctx, clients: number): Promise<void> {
  log(`\n## Memory per idle connection: ${fmt(clients)} connections held`);
  const per: Partial<Record<Kind, number>> = {};
  // nchan: the RSS of the nginx process (no master process: the only one), its bridge aside;
  // centrifugo: its one process (with its JetStream consumer in it).
  const kinds: Kind[] = ["gateway", "idle"];
  for (const peer of ["nchan", "centrifugo"] as const) if (peerAvailable(peer)) kinds.push(peer);
  for (const kind of kinds) {
    const centrifugo = kind === "centrifugo";
    const server = await startKind(kind, ctx, "bench.idle", centrifugo ? { METRICS: "true" } : {});
    const pool = LoadPool.sized(WORKERS, clients);
    try {
      await sleep(1000);
      const pid = server.child.pid as number;
      const before = median([rss(pid), (await sleep(200), rss(pid)), (await sleep(200), rss(pid))]);
      const goInUse0 = centrifugo ? await centrifugoGoInUse(server.port) : NaN;
      const opened = await pool.open(
        server.port,
        eventsPath(kind, "bench.idle"),
        new Array(clients).fill(null),
        256,
        sourceOf(kind),
      );
      if (opened.ok !== clients)
        throw new Error(`${kind}: only ${opened.ok} of ${clients} connected`);
      await sleep(3000);
      const after = median([rss(pid), (await sleep(300), rss(pid)), (await sleep(300), rss(pid))]);
      per[kind] = (after - before) / clients;
      // Centrifugo's Go heap and stacks in use beside its RSS: how much of its RSS the Go
      // runtime holds without using it (Node's RSS holds some too; only Centrifugo exposes the
      // figure without a debugger).
      const heap = centrifugo
        ? `   (Go heap + stacks in use ${fmt(((await centrifugoGoInUse(server.port)) - goInUse0) / clients / 1024, 1)} kB per connection)`
        : "";
      log(
        `${(LABEL[kind] ?? kind).padEnd(15)} RSS ${fmt(before / 2 ** 20, 1)} MiB -> ${fmt(after / 2 ** 20, 1)} MiB   ${fmt((per[kind] ?? NaN) / 1024, 1)} kB per connection${heap}`,
      );
    } finally {
      pool.close();
      await server.stop();
    }
  }
  if (per.gateway && per.idle)
    log(`ratio gateway/bare: ${ratio(per.gateway, per.idle)} (target <= 1.2)`);
  if (per.gateway && per.nchan) log(`ratio gateway/nchan: ${ratio(per.gateway, per.nchan)}`);
  if (per.gateway && per.centrifugo)
    log(`ratio gateway/centrifugo: ${ratio(per.gateway, per.centrifugo)}`);
}
