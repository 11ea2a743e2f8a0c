/**
 * The demo's ticker: publishes a JSON tick to `demo.ticker` (or the first argument) every
 * second (or TICK_MS) until stopped, so the demo page has something to show.
 */
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { natsServers } from "./natsArgs";

async function main(): Promise<void> {
  const subject = process.argv[2] ?? "demo.ticker";
  const every = Number(process.env.TICK_MS ?? 1000);
  const nc = await connect({ servers: natsServers(), maxReconnectAttempts: -1 });
  const js = jetstream(nc);
  let n = 0;
  const timer = setInterval(() => {
    n++;
    js.publish(subject, JSON.stringify({ tick: n, at: new Date().toISOString() })).catch(
      (err: Error) => process.stderr.write(`publish failed: ${err.message}\n`),
    );
  }, every);
  const stop = () => {
    clearInterval(timer);
    void nc.drain().finally(() => process.exit(0));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

void main();
