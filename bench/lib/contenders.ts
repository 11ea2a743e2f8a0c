/**
 * Servers of several kinds running side by side, each with its own subject and its clients
 * connected and held in one shared {@link LoadPool}, so that the measured rounds can rotate
 * through the kinds: in each round only the kind being measured gets messages (on its own
 * subject), the others hold idle connections.
 */
import type { Ctx } from "./ctx";
import {
  comparedKinds,
  eventsPath,
  publishOptionsOf,
  sourceOf,
  startKind,
  type Kind,
} from "./kinds";
import { WORKERS } from "./options";
import { LoadPool, type Source } from "./pool";
import { cpuMs, sleep, type ServerProc } from "./procs";
import type { PublishOptions } from "./publish";

export interface Contender {
  kind: Kind;
  /** Its own subject: a message on it reaches this server alone. */
  subject: string;
  server: ServerProc;
  source: Source;
  publish: PublishOptions;
}

/** What to start: a kind on a subject, with extra env for the gateway. */
export interface ContenderSpec {
  kind: Kind;
  subject: string;
  extra?: Record<string, string>;
}

/**
 * Starts every spec's server and connects `clients` fresh subscriptions (no cursor) to each, 256
 * at a time, then lets them settle for 500 ms; throws (after stopping what it started) unless
 * every client connected. `burst`: the ideal reference's write size.
 */
export async function startContenders(
  ctx: Ctx,
  pool: LoadPool,
  specs: ContenderSpec[],
  clients: number,
  burst: number,
): Promise<Contender[]> {
  const started: Contender[] = [];
  try {
    for (const { kind, subject, extra } of specs) {
      const server = await startKind(kind, ctx, subject, extra, burst);
      const c: Contender = {
        kind,
        subject,
        server,
        source: sourceOf(kind),
        publish: publishOptionsOf(kind, subject),
      };
      started.push(c);
      const path = eventsPath(kind, subject);
      const opened = await pool.open(
        server.port,
        path,
        new Array(clients).fill(null),
        256,
        c.source,
      );
      if (opened.ok !== clients)
        throw new Error(
          `${kind}: only ${opened.ok} of ${clients} connected: ${JSON.stringify(opened.statuses)}`,
        );
    }
    await sleep(500);
    return started;
  } catch (err) {
    await stopContenders(started);
    throw err;
  }
}

/**
 * Runs `run` with every compared kind started on `bench.<scenario>.<kind>` and `clients`
 * clients each, in a pool sized for them all; stops the servers and the pool afterwards,
 * whatever happens.
 */
export async function withContenders<T>(
  ctx: Ctx,
  scenario: string,
  clients: number,
  burst: number,
  run: (cs: Contender[], pool: LoadPool, kinds: Kind[]) => Promise<T>,
): Promise<T> {
  const kinds = comparedKinds();
  const pool = LoadPool.sized(WORKERS, clients * kinds.length);
  let cs: Contender[] = [];
  try {
    cs = await startContenders(
      ctx,
      pool,
      kinds.map((kind) => ({ kind, subject: `bench.${scenario}.${kind}` })),
      clients,
      burst,
    );
    return await run(cs, pool, kinds);
  } finally {
    await stopContenders(cs);
    pool.close();
  }
}

export async function stopContenders(cs: Contender[]): Promise<void> {
  for (const c of cs) await c.server.stop();
}

/** CPU used so far, in ms: the server, nats-server (NaN if unknown), its bridge (0 if none). */
export interface CpuMark {
  server: number;
  nats: number;
  bridge: number;
  clients: number;
}

export function cpuMark(ctx: Ctx, c: Contender, pool: LoadPool): CpuMark {
  const bridgePid = c.server.bridge?.child.pid;
  return {
    server: cpuMs(c.server.child.pid as number),
    nats: ctx.natsPid === undefined ? NaN : cpuMs(ctx.natsPid),
    bridge: bridgePid === undefined ? 0 : cpuMs(bridgePid),
    clients: pool.cpuMs(),
  };
}

/** The CPU used since `m0`, in ms, per process. */
export function cpuSince(ctx: Ctx, c: Contender, pool: LoadPool, m0: CpuMark): CpuMark {
  const m = cpuMark(ctx, c, pool);
  return {
    server: m.server - m0.server,
    nats: m.nats - m0.nats,
    bridge: m.bridge - m0.bridge,
    clients: m.clients - m0.clients,
  };
}

/** Pause between two kinds' rounds, in ms: the last one's after-work (a Go GC, acks) settles. */
export const SETTLE_MS = 500;

/**
 * The contenders in the order of round `r`: rotated by one each round, so every kind follows
 * every other equally often. In a fixed order the same kind always runs right after the same
 * neighbour, and inherits whatever that one still does after its round.
 */
export function roundOrder<T>(cs: readonly T[], r: number): T[] {
  const k = cs.length === 0 ? 0 : r % cs.length;
  return [...cs.slice(k), ...cs.slice(0, k)];
}
