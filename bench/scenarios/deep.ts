/** Deep resume: one client far behind catches up through the gateway's replay. */
import type { Ctx } from "../lib/ctx";
import { nowMs } from "../lib/histogram";
import { startKind } from "../lib/kinds";
import { replayLoad } from "../lib/replayLoad";
import { DEEP } from "../lib/options";
import { LoadPool } from "../lib/pool";
import { fill } from "../lib/publish";
import { fmt, log } from "../lib/report";

export async function deep(ctx: Ctx): Promise<void> {
  const subject = "bench.deep";
  log(`\n## Deep resume: one client ${fmt(DEEP)} messages behind`);
  const last = await fill(ctx.js, subject, DEEP);
  const cursor = last - DEEP;
  const server = await startKind("gateway", ctx, subject);
  const pool = new LoadPool(1);
  try {
    const t0 = nowMs();
    await pool.open(server.port, `/events/${subject}`, [cursor], 0);
    const caught = await pool.catchup(last, 300_000);
    const secs = (caught.lastAt - t0) / 1000;
    log(
      `replayed ${fmt(caught.deliveries)} events in ${fmt(secs, 2)} s: ${fmt(caught.deliveries / secs)} events/s   duplicates ${caught.duplicates}   gaps ${caught.gaps}`,
    );
    log(await replayLoad(server));
  } finally {
    pool.close();
    await server.stop();
  }
}
