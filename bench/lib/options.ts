/**
 * The command line of `npm run bench` (see bench/run.ts), read once: scenario names and the
 * `--name value` options, with their defaults.
 */
const args = process.argv.slice(2);

/** The value of `--name`, or `def` when absent. */
export function opt(name: string, def: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? (args[i + 1] ?? def) : def;
}

const list = (name: string, def: string) => opt(name, def).split(",").map(Number);

const chosen = args.filter((a, i) => !a.startsWith("--") && !(args[i - 1] ?? "").startsWith("--"));

/** Whether scenario `name` runs: named on the command line, or none named at all. */
export const want = (name: string): boolean => chosen.length === 0 || chosen.includes(name);

/** The command line as given, for the report's header. */
export const ARGS = args;

/** Fan-out client counts (`--clients`, default 2000,10000). */
export const CLIENTS = list("clients", "2000,10000");
export const TRACING_CLIENTS = list("tracing-clients", "2000");
/** Messages per fan-out burst (`--messages`, default 100). */
export const MESSAGES = Number(opt("messages", "100"));
/** Measured fan-out rounds per kind (`--rounds`, default 7), after WARMUP rounds. */
export const ROUNDS = Number(opt("rounds", "7"));
export const WARMUP = 2;
export const STORM_CLIENTS = Number(opt("storm-clients", "5000"));
export const STORM_SPREAD = Number(opt("storm-spread", "3000"));
export const DEEP = Number(opt("deep", "100000"));
/**
 * Load-client processes (`--workers`, default 2): a minimum, raised so that no worker holds more
 * sockets than the open-file limit allows (LoadPool.sized in bench/lib/pool.ts).
 */
export const WORKERS = Number(opt("workers", "2"));
/** Steady client counts (`--steady-clients`, default 2000,10000). */
export const STEADY_CLIENTS = list("steady-clients", "2000,10000");
/** Steady publish intervals, in ms (`--steady-interval-ms`, default 50,10). */
export const STEADY_INTERVALS = list("steady-interval-ms", "50,10");
/** Measured seconds of one steady round (`--steady-seconds`, default 3). */
export const STEADY_SECONDS = Number(opt("steady-seconds", "3"));
/** Measured steady rounds per kind (`--steady-rounds`, default 3). */
export const STEADY_ROUNDS = Number(opt("steady-rounds", "3"));
/** Unmeasured seconds of steady traffic before each measured steady round (default 1). */
export const STEADY_WARMUP_SECONDS = Number(opt("steady-warmup-seconds", "1"));
/** Steady publishes awaiting their JetStream ack at once, at most (see publishSteady). */
export const STEADY_IN_FLIGHT = 16;
