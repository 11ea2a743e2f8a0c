/**
 * NATS over mutual TLS (NATS_TLS_CA_FILE, NATS_TLS_CERT_FILE, NATS_TLS_KEY_FILE), what the Helm
 * chart mounts from `nats.tls`: a real nats-server that requires and verifies client
 * certificates, certificates made with openssl, and the built gateway as a real process.
 */
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { startGatewayProcess, type GatewayProcess } from "../support/gateway";
import { findNatsBinary } from "../support/nats";
import { freePort } from "../support/ports";
import { sleep, TailBuffer, terminate, trackChild } from "../support/process";
import { rawGet } from "../support/sse-client";
import { openRecorder, Tracker, waitForId, waitUntil } from "./contract-helpers";

let dir: string;
let url: string;
let nc: NatsConnection;
const tracker = new Tracker();
const gateways: GatewayProcess[] = [];
let stopNats: () => Promise<void> = async () => {};
const file = (name: string) => path.join(dir, name);

function openssl(args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
function makeCertificates(): void {
  openssl(
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca"].concat([
      "-keyout",
      "ca-key.pem",
      "-out",
      "ca.pem",
    ]),
  );
  fs.writeFileSync(file("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  for (const who of ["server", "client"]) {
    openssl(
      ["req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${who}`].concat([
        "-keyout",
        `${who}-key.pem`,
        "-out",
        `${who}.csr`,
      ]),
    );
    const ext = who === "server" ? ["-extfile", "server.ext"] : [];
    openssl(
      ["x509", "-req", "-in", `${who}.csr`, "-CA", "ca.pem", "-CAkey", "ca-key.pem"].concat([
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        `${who}.pem`,
        ...ext,
      ]),
    );
  }
}

const clientTls = () => ({
  caFile: file("ca.pem"),
  certFile: file("client.pem"),
  keyFile: file("client-key.pem"),
});

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "jsgw-tls-"));
  makeCertificates();
  const port = await freePort();
  url = `nats://127.0.0.1:${port}`;
  fs.writeFileSync(
    file("nats.conf"),
    [
      `listen: 127.0.0.1:${port}`,
      `jetstream { store_dir: "${file("store")}" }`,
      // verify: every client must present a certificate signed by the CA.
      `tls { cert_file: "${file("server.pem")}", key_file: "${file("server-key.pem")}", ca_file: "${file("ca.pem")}", verify: true, timeout: 2 }`,
    ].join("\n"),
  );
  const logs = new TailBuffer(4_096);
  const proc = spawn(findNatsBinary(), ["-c", file("nats.conf")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  trackChild(proc);
  proc.stderr?.on("data", (c: Buffer) => logs.push(c));
  stopNats = () => terminate(proc, 5_000);
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      nc = await connect({ servers: url, tls: clientTls(), reconnect: false, timeout: 1_000 });
      await (await jetstreamManager(nc)).getAccountInfo();
      break;
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`TLS nats-server not ready: ${String(err)}\n${logs}`, { cause: err });
      await sleep(100);
    }
  }
  await (await jetstreamManager(nc)).streams.add({ name: "TLS", subjects: ["tls.>"] });
});

afterAll(async () => {
  await tracker.closeAll();
  await Promise.all(gateways.map((g) => g.stop()));
  await nc?.close();
  await stopNats();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("NATS over mutual TLS", () => {
  it("nats tls - with the CA and a client certificate the gateway connects and streams", async () => {
    const gw = await startGatewayProcess({
      NATS_URL: url,
      NATS_TLS_CA_FILE: file("ca.pem"),
      NATS_TLS_CERT_FILE: file("client.pem"),
      NATS_TLS_KEY_FILE: file("client-key.pem"),
    });
    gateways.push(gw);
    await waitUntil(
      async () => (await rawGet(`${gw.adminUrl}/readyz`)).status === 200,
      "readiness over TLS",
    );
    const rec = await openRecorder(tracker, `${gw.url}/events/tls.orders`);
    const ack = await jetstream(nc).publish("tls.orders", "over tls");
    await waitForId(rec, ack.seq);
    expect(rec.events.map((e) => [Number(e.id), e.data])).toEqual([[ack.seq, "over tls"]]);
  });

  it("nats tls - without a client certificate the server refuses it: not ready, still alive, no crash", async () => {
    const gw = await startGatewayProcess({ NATS_URL: url, NATS_TLS_CA_FILE: file("ca.pem") });
    gateways.push(gw);
    await sleep(1_500);
    const ready = await rawGet(`${gw.adminUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body)).toMatchObject({ checks: { nats: false } });
    expect((await rawGet(`${gw.adminUrl}/livez`)).status).toBe(200);
    // A browser is shed with a retry, never answered 5xx.
    const res = await rawGet(`${gw.url}/events/tls.orders`, { Accept: "text/event-stream" });
    expect(res.status).toBe(200);
    expect(res.body).toMatch(/^retry: \d+$/m);
    expect(gw.child.exitCode).toBeNull();
  });
});
