/**
 * The publish path of the `nchan` reference: consumes the bench's JetStream subject with one
 * ordered consumer (from the next message on, as the other references do) and POSTs each
 * message's payload, as is, to Nchan's publisher location, `POST /pub/<subject>`.
 *
 * The POSTs are pipelined on one keep-alive connection: each is written as soon as its message
 * arrives, without waiting for the answers to the earlier ones, and the messages of one pull
 * batch go out in one write (corked until the next tick). nginx handles the requests of a
 * connection one after the other, so Nchan still publishes in the stream's order, which a real
 * deployment needs; one request at a time (the bridge's first version) made the round trip per
 * message its bottleneck at 100 messages a second.
 *
 * Env: NATS_URL, STREAM, SUBJECT, NCHAN_PORT, PORT (its own `GET /readyz`, answered once the
 * consumer is in place).
 */
import { createServer } from "node:http";
import { connect as connectTcp, type Socket } from "node:net";
import { connect } from "@nats-io/transport-node";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";

const subject = process.env.SUBJECT ?? "bench.fanout";
const nchanPort = Number(process.env.NCHAN_PORT ?? 8091);
let failures = 0;

function warn(text: string): void {
  if (failures++ < 5) process.stderr.write(`nchanBridge: ${text}\n`);
}

/**
 * Nchan's answers, read off the connection in order: status line, headers, a body of
 * Content-Length bytes. Only the statuses matter (>= 300 is reported).
 */
class Answers {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      const headEnd = this.buf.indexOf("\r\n\r\n");
      if (headEnd < 0) return;
      const head = this.buf.toString("latin1", 0, headEnd);
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      const total = headEnd + 4 + length;
      if (this.buf.length < total) return;
      const status = Number(head.slice(9, 12));
      if (status >= 300) warn(`POST answered ${status}`);
      this.buf = this.buf.subarray(total);
    }
  }
}

function openPublisher(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp({ host: "127.0.0.1", port: nchanPort });
    const answers = new Answers();
    socket.setNoDelay(true);
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
    socket.on("data", (b) => answers.push(b));
    socket.on("close", () => warn("Nchan closed the publisher connection"));
  });
}

async function main(): Promise<void> {
  const publisher = await openPublisher();
  publisher.on("error", (err) => warn(`publisher connection: ${err.message}`));
  let corked = false;
  const post = (body: Uint8Array) => {
    if (!corked) {
      corked = true;
      publisher.cork();
      process.nextTick(() => {
        corked = false;
        publisher.uncork();
      });
    }
    publisher.write(
      `POST /pub/${subject} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    publisher.write(body);
  };
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
