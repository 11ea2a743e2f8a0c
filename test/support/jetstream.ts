import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import {
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";

/** A publisher's view of JetStream for tests: what backend services do. */
export interface TestJetStream {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  addStream(name: string, subjects: string[], extra?: Partial<StreamConfig>): Promise<void>;
  /** Publishes and returns the stream sequence JetStream assigned. */
  publish(
    subject: string,
    data: string | Uint8Array,
    hdrs?: Record<string, string>,
  ): Promise<number>;
  close(): Promise<void>;
}

export async function connectJetStream(url: string): Promise<TestJetStream> {
  const nc = await connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  return {
    nc,
    js,
    jsm,
    async addStream(name, subjects, extra = {}) {
      await jsm.streams.add({ name, subjects, ...extra });
    },
    async publish(subject, data, hdrs) {
      let h;
      if (hdrs) {
        h = headers();
        for (const [k, v] of Object.entries(hdrs)) h.set(k, v);
      }
      const ack = await js.publish(subject, data, h ? { headers: h } : undefined);
      return ack.seq;
    },
    close: () => nc.close(),
  };
}
