import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { NatsHandle } from "../../test/support/nats";

/** The stream every bench subject (`bench.>`) is stored in. */
export const STREAM = "BENCH";

/** What every scenario shares: the one nats-server of the run and a connection to it. */
export interface Ctx {
  nats: NatsHandle;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** nats-server's pid (for its CPU), undefined when not found (a server in a container). */
  natsPid: number | undefined;
}
