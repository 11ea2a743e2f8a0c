/**
 * Creates (or updates) a stream: `npm run ensure-stream -- <NAME> <subject> [<subject> ...]`.
 * `make dev` uses it for the demo stream DEMO capturing `demo.>`.
 */
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { natsServers } from "./natsArgs";

async function main(): Promise<void> {
  const [name, ...subjects] = process.argv.slice(2);
  if (!name || subjects.length === 0) {
    process.stderr.write("usage: ensure-stream <NAME> <subject> [<subject> ...]\n");
    process.exit(2);
  }
  const nc = await connect({ servers: natsServers() });
  const jsm = await jetstreamManager(nc);
  try {
    const info = await jsm.streams.info(name);
    await jsm.streams.update(name, { ...info.config, subjects });
    process.stdout.write(`stream ${name} updated: ${subjects.join(", ")}\n`);
  } catch {
    await jsm.streams.add({ name, subjects, max_age: 24 * 3600 * 1e9, max_msgs: 100_000 });
    process.stdout.write(`stream ${name} created: ${subjects.join(", ")}\n`);
  }
  await nc.close();
}

void main();
