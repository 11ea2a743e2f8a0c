/**
 * Reconnect storms against the gateway: K clients whose cursors are spread over the last
 * messages reconnect at once to a fresh instance (`storm`), also with authorization on
 * (`auth`: a token per client, HS256 and ES256).
 */
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { STREAM, type Ctx } from "../lib/ctx";
import { median, nowMs } from "../lib/histogram";
import { startKind } from "../lib/kinds";
import { replayLoad } from "../lib/replayLoad";
import { STORM_CLIENTS, STORM_SPREAD, WORKERS } from "../lib/options";
import { LoadPool } from "../lib/pool";
import { cpuMs, sleep } from "../lib/procs";
import { fill, publishBurst } from "../lib/publish";
import { fmt, log } from "../lib/report";
import { es256Key, hs256Key, mintTokens } from "../lib/tokens";

/** Peak consumers on the stream while `work` runs, read from JetStream itself. */
async function peakConsumers<T>(nc: NatsConnection, work: Promise<T>): Promise<[T, number]> {
  const jsm = await jetstreamManager(nc);
  let peak = 0;
  let running = true;
  const poll = (async () => {
    while (running) {
      const info = await jsm.streams.info(STREAM).catch(() => undefined);
      if (info) peak = Math.max(peak, info.state.consumer_count);
      await sleep(20);
    }
  })();
  try {
    return [await work, peak];
  } finally {
    running = false;
    await poll;
  }
}

/** What one reconnect storm measured. */
interface StormResult {
  opened: { ok: number; failed: number; statuses: Record<string, number> };
  caught: { complete: number; deliveries: number; duplicates: number; gaps: number };
  /** From the first connection to the last client caught up, in s. */
  secs: number;
  lost: number;
  peak: number;
  /** CPU the server used over the same time, in ms. */
  serverCpu: number;
  /** What the gateway's replays cost NATS, from its /metrics (see {@link replayLoad}). */
  load: string;
}

/**
 * K clients whose cursors are spread over the last messages reconnect at once to a fresh
 * instance. With the default window they resume from memory; `env` can shrink the window so
 * most of them need replay consumers instead. `headers`: extra request headers per client (a
 * token each, say), handed to the load clients before the clock starts.
 */
async function stormRun(
  ctx: Ctx,
  subject: string,
  env: Record<string, string> = {},
  headers?: Array<Record<string, string>>,
): Promise<StormResult> {
  // A storm starts from a stream holding only its own messages: a fresh instance sizes its
  // window's warm-up from the stream's average message size, which earlier scenarios' messages
  // (other subjects, trace headers) would otherwise change from one `make bench` to the next.
  await ctx.jsm.streams.purge(STREAM);
  const last = await fill(ctx.js, subject, STORM_SPREAD);
  const first = last - STORM_SPREAD + 1;
  const cursors = Array.from(
    { length: STORM_CLIENTS },
    () => first - 1 + Math.floor(Math.random() * STORM_SPREAD),
  );
  const expected = cursors.reduce((n, c) => n + (last - c), 0);
  const server = await startKind("gateway", ctx, subject, env);
  const pool = new LoadPool(WORKERS);
  try {
    if (headers) await pool.headers(headers);
    const pid = server.child.pid as number;
    const cpu0 = cpuMs(pid);
    const t0 = nowMs();
    const [result, peak] = await peakConsumers(
      ctx.nc,
      (async () => {
        const opened = await pool.open(server.port, `/events/${subject}`, cursors, 0);
        // Live messages keep arriving during the storm: the handoff must hold under them too.
        const live = 50;
        let target = last;
        for (let i = 0; i < live; i++) {
          target = await publishBurst(ctx.js, subject, 1, -2);
          await sleep(10);
        }
        const caught = await pool.catchup(target, 300_000);
        return { opened, caught, target };
      })(),
    );
    const serverCpu = cpuMs(pid) - cpu0;
    const { opened, caught, target } = result;
    const expectedAll = expected + STORM_CLIENTS * (target - last);
    const lost = expectedAll - (caught.deliveries - caught.duplicates);
    const load = await replayLoad(server);
    return { opened, caught, secs: (caught.lastAt - t0) / 1000, lost, peak, serverCpu, load };
  } finally {
    pool.close();
    await server.stop();
  }
}

export async function storm(
  ctx: Ctx,
  subject: string,
  label: string,
  env: Record<string, string> = {},
): Promise<void> {
  log(
    `\n## Reconnect storm${label}: ${fmt(STORM_CLIENTS)} clients, cursors spread over the last ${fmt(STORM_SPREAD)} messages, all at once to a fresh instance`,
  );
  const { opened, caught, secs, lost, peak, load, serverCpu } = await stormRun(ctx, subject, env);
  log(`connected ${fmt(opened.ok)}/${fmt(STORM_CLIENTS)} ${JSON.stringify(opened.statuses)}`);
  log(
    `caught up ${fmt(caught.complete)}/${fmt(STORM_CLIENTS)} in ${fmt(secs, 2)} s   events ${fmt(caught.deliveries)} (${fmt(caught.deliveries / secs)}/s)`,
  );
  log(
    `lost ${fmt(lost)}   duplicates ${fmt(caught.duplicates)}   out-of-order/gaps ${fmt(caught.gaps)}   peak consumers on NATS ${peak} (1 feed + replays bounded by REPLAY_MAX_CONCURRENT=64)`,
  );
  log(`server CPU ${fmt(serverCpu)} ms for the storm   ${load}`);
}

/**
 * The in-window reconnect storm with authorization off, then on with an HS256 secret, then on
 * with an ES256 public key (asymmetric verification costs more). Every client of an `on` run
 * sends `Authorization: Bearer <token>`, a token of its own (distinct `sub`) minted in advance
 * and handed to the load clients before the clock starts, so the difference is the gateway's
 * verification and grant checks. A fresh subject and instance per run.
 */
export async function auth(ctx: Ctx): Promise<void> {
  log(
    `\n## Reconnect storm with authorization off and on: ${fmt(STORM_CLIENTS)} clients, cursors spread over the last ${fmt(STORM_SPREAD)} messages, all at once to a fresh instance; runs off, HS256 (AUTH_JWT_SECRET), ES256 (AUTH_JWT_PUBLIC_KEY), each client with a token of its own (Authorization: Bearer)`,
  );
  const modes = [
    { label: "off", key: undefined },
    { label: "HS256", key: hs256Key() },
    { label: "ES256", key: es256Key() },
  ] as const;
  const rows: Record<string, StormResult> = {};
  for (const { label, key } of modes) {
    const subject = `bench.auth.${label.toLowerCase()}`;
    // Off too (with no headers): the load clients have started and answered before the clock
    // starts in every mode alike.
    let headers: Array<Record<string, string>> = [];
    if (key) {
      const tokens = await mintTokens(key, STORM_CLIENTS, ["bench.auth.>"]);
      headers = tokens.map((t) => ({ Authorization: `Bearer ${t}` }));
      log(
        `${label} tokens: ${fmt(tokens.length)} minted in advance, ${fmt(median(tokens.map((t) => t.length)))} bytes each (median)`,
      );
    }
    const r = await stormRun(ctx, subject, key?.env ?? {}, headers);
    rows[label] = r;
    log(
      `${label.padEnd(6)} connected ${fmt(r.opened.ok)}/${fmt(STORM_CLIENTS)} ${JSON.stringify(r.opened.statuses)}   caught up ${fmt(r.caught.complete)}/${fmt(STORM_CLIENTS)} in ${fmt(r.secs, 2)} s   events ${fmt(r.caught.deliveries)} (${fmt(r.caught.deliveries / r.secs)}/s)   lost ${fmt(r.lost)}   duplicates ${fmt(r.caught.duplicates)}   gaps ${fmt(r.caught.gaps)}   server CPU ${fmt(r.serverCpu)} ms for the storm, ${fmt((r.serverCpu * 1000) / STORM_CLIENTS, 1)} µs/connection`,
    );
    await sleep(500);
  }
  const off = rows.off;
  const ratio = (on: StormResult | undefined, name: string) => {
    if (!off || !on) return;
    log(
      `${name}: storm time ${fmt(on.secs / off.secs, 2)}x, CPU per connection ${fmt(on.serverCpu / off.serverCpu, 2)}x`,
    );
  };
  ratio(rows.HS256, "auth on/off");
  ratio(rows.ES256, "auth ES256/off");
}
