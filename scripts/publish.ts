/**
 * Publishes one message to JetStream: `npm run publish -- <subject> <payload> [--event <type>]`.
 * Prints the stream and sequence JetStream assigned (the SSE `id:` browsers will see).
 */
import { connect, headers } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { natsServers } from "./natsArgs";

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const i = args.indexOf("--event");
  const event = i >= 0 ? args.splice(i, 2)[1] : undefined;
  const [subject, payload] = args;
  if (!subject || payload === undefined) {
    process.stderr.write("usage: publish <subject> <payload> [--event <type>]\n");
    process.exit(2);
  }
  const nc = await connect({ servers: natsServers() });
  const h = headers();
  if (event) h.set(process.env.EVENT_TYPE_HEADER ?? "SSE-Event", event);
  const ack = await jetstream(nc).publish(subject, payload, { headers: h });
  process.stdout.write(`published to ${ack.stream} as sequence ${ack.seq}\n`);
  await nc.close();
}

void main();
