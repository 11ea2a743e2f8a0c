/**
 * The publish path of the `nchan` reference: consumes the bench's JetStream subject with one
 * ordered consumer (from the next message on, as the other references do) and POSTs each
 * message's payload, as is, to Nchan's publisher location, `POST /pub/<subject>`, over one
 * keep-alive connection. One request at a time, in stream order (the agent queues the rest),
 * so Nchan publishes in the stream's order: what a real deployment would have to do.
 *
 * Env: NATS_URL, STREAM, SUBJECT, NCHAN_PORT, PORT (its own `GET /readyz`, answered once the
 * consumer is in place).
 */
import { Agent, createServer, request } from "node:http";
import { connect } from "@nats-io/transport-node";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";

const subject = process.env.SUBJECT ?? "bench.fanout";
const nchanPort = Number(process.env.NCHAN_PORT ?? 8091);
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
let failures = 0;

function post(body: Uint8Array): void {
  const req = request(
    {
      host: "127.0.0.1",
      port: nchanPort,
      method: "POST",
      path: `/pub/${subject}`,
      agent,
      headers: { "Content-Type": "text/plain", "Content-Length": body.length },
    },
    (res) => {
      if ((res.statusCode ?? 0) >= 300 && failures++ < 5)
        process.stderr.write(`nchanBridge: POST answered ${res.statusCode}\n`);
      res.resume();
    },
  );
  req.on("error", (err) => {
    if (failures++ < 5) process.stderr.write(`nchanBridge: POST failed: ${err.message}\n`);
  });
  req.end(body);
}

async function main(): Promise<void> {
  const nc = await connect({ servers: process.env.NATS_URL ?? "127.0.0.1:4222" });
  const stream = process.env.STREAM ?? "BENCH";
  const info = await (await jetstreamManager(nc)).streams.info(stream);
  const consumer = await jetstream(nc).consumers.get(stream, {
    filter_subjects: [subject],
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: info.state.last_seq + 1,
  });
  await consumer.consume({ max_messages: 512, callback: (m) => post(m.data) });
  createServer((req, res) => {
    res.statusCode = req.url === "/readyz" ? 200 : 404;
    res.end();
  }).listen(Number(process.env.PORT ?? 8092), "127.0.0.1");
}

process.on("SIGTERM", () => process.exit(0));
void main();
