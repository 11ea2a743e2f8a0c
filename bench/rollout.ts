/**
 * `make rollout`: the rolling-restart scenario of `test/rollout/` at a larger size, with the
 * chart's timings unscaled (preStop, grace period, minReadySeconds, drain window as rendered).
 * Prints the figures; exits 1 when a client lost or repeated a message, fell behind or gave up,
 * or an old pod did not exit 0 within its grace period.
 *
 *   node dist/bench/rollout.js [--clients 5000] [--rate 5] [--rounds 2] [--processes 2]
 *                              [--per-address 4] [--time-limit 600] [--set key=value]…
 *
 * The default rate keeps deliveries near the Jest test's (5,000 × 5/s against 1,000 × 20/s):
 * about what two cores carry through haproxy, three pods and the clients without queueing. At
 * `--rate 20` (100,000 deliveries/s) two cores saturate, and the longest gap then measures the
 * queue, not the rollout.
 *
 * Everything runs on 127.0.0.1: nats-server, haproxy, the gateway pods, and the clients in
 * `--processes` child processes (each client from its own loopback source address).
 */
import { renderRolloutPlan } from "../test/support/rolloutPlan";
import { formatFigures, runRolloutScenario } from "../test/support/rolloutScenario";

const args = process.argv.slice(2);
const opt = (name: string, def: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? (args[i + 1] ?? def) : def;
};
const sets = args.flatMap((a, i) => (a === "--set" && args[i + 1] ? [args[i + 1] as string] : []));

const CLIENTS = Number(opt("clients", "5000"));
const RATE = Number(opt("rate", "5"));
const ROUNDS = Number(opt("rounds", "2"));
const PROCESSES = Number(opt("processes", "2"));
const PER_ADDRESS = Number(opt("per-address", "4"));
const TIME_LIMIT_S = Number(opt("time-limit", "600"));

/** Three replicas behind a proxy, quieter logs; no timing is changed from the chart's defaults. */
const VALUES = ["replicaCount=3", "config.trustProxy=true", "config.logLevel=warn", ...sets];

function log(line: string): void {
  process.stdout.write(`[rollout] ${line}\n`);
}

async function main(): Promise<number> {
  const plan = renderRolloutPlan(VALUES);
  log(`values: ${VALUES.join(" ")}`);
  const figures = await runRolloutScenario({
    plan,
    clients: CLIENTS,
    clientsPerAddress: PER_ADDRESS,
    clientProcesses: PROCESSES,
    publishPerSecond: RATE,
    rounds: ROUNDS,
    steadyMs: 5_000,
    timeLimitMs: TIME_LIMIT_S * 1000,
    log,
  });
  process.stdout.write(`\n${formatFigures(figures, plan)}\n`);
  const badExits = figures.terminations.filter((t) => t.exitCode !== 0 || !t.inTime);
  const ok =
    figures.lost === 0 &&
    figures.duplicated === 0 &&
    figures.clientsBehind === 0 &&
    figures.clientsFailed === 0 &&
    figures.mismatchedPayloads === 0 &&
    badExits.length === 0 &&
    figures.restarts === plan.replicas * ROUNDS;
  if (!ok) {
    process.stdout.write(`FAILED: ${JSON.stringify({ badExits, failures: figures.failures })}\n`);
  }
  return ok ? 0 : 1;
}

// A hard bound on top of the scenario's own: nothing outlives the time limit by much.
const watchdog = setTimeout(
  () => {
    log(`still running ${TIME_LIMIT_S + 120} s after start; giving up`);
    process.exit(2);
  },
  (TIME_LIMIT_S + 120) * 1000,
);
watchdog.unref();

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
