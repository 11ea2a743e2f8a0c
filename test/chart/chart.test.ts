/**
 * The Helm chart, rendered and validated offline: helm lint, kubeconform against the
 * Kubernetes API schemas, the kubernetes-models validators, and assertions on what the chart
 * promises (no session affinity, probes on the admin port, a drain that fits the grace period,
 * restricted security, every gateway setting reachable from values, bad values refused).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse } from "yaml";
import { CONFIG_KEYS, loadConfig } from "../../src/config";
import {
  CHART,
  CI_VALUES_DIR,
  find,
  kubeconform,
  parseObjects,
  render,
  renderNotes,
  renderText,
  REPO_ROOT,
  run,
  tool,
  validateModels,
  type K8sObject,
} from "../support/helm";

const ciFiles = fs
  .readdirSync(CI_VALUES_DIR)
  .filter((f) => f.endsWith(".yaml") && !f.startsWith("k8s"))
  .sort();
/** [label, values files]: the defaults and each file under helm/ci/. */
const variants: [string, string[]][] = [
  ["defaults", []],
  ...ciFiles.map((f): [string, string[]] => [f, [path.join(CI_VALUES_DIR, f)]]),
];
const values = parse(fs.readFileSync(path.join(CHART, "values.yaml"), "utf8")) as {
  config: Record<string, unknown>;
};
// Custom resources kubeconform has no built-in schema for; kubernetes-models validates them.
const CRDS = ["ServiceMonitor", "HTTPRoute"];

const camel = (env: string) =>
  env.toLowerCase().replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
/** Settings the chart sets itself, from the value named here, instead of `config.*`. */
const CHART_MANAGED: Record<string, string> = {
  PORT: "containerPorts.http",
  ADMIN_PORT: "containerPorts.admin",
  NATS_TOKEN: "nats.auth (token)",
  NATS_USER: "nats.auth (userPassword)",
  NATS_PASSWORD: "nats.auth (userPassword)",
  NATS_CREDS_FILE: "nats.auth (creds)",
  NATS_TLS_CA_FILE: "nats.tls",
  NATS_TLS_CERT_FILE: "nats.tls.clientCert",
  NATS_TLS_KEY_FILE: "nats.tls.clientCert",
  AUTH_JWT_SECRET: "auth.jwtSecret / auth.existingSecret (a Secret)",
};

function gatewayContainer(objects: K8sObject[]) {
  return find(objects, "Deployment").spec.template.spec.containers.find(
    (c: { name: string }) => c.name === "gateway",
  );
}

function configData(objects: K8sObject[]): Record<string, string> {
  return find(objects, "ConfigMap").data as Record<string, string>;
}

function writeValues(obj: unknown): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chart-values-"));
  const file = path.join(dir, "values.json");
  fs.writeFileSync(file, JSON.stringify(obj));
  return file;
}

describe("chart validity", () => {
  it.each(variants)("helm lint --strict - passes with %s", (_label, files) => {
    const args = ["lint", "--strict", CHART, "--kube-version", "1.34.4"];
    for (const f of files) args.push("-f", f);
    const r = run(tool("helm"), args);
    expect(`${r.stdout}${r.stderr}`).toContain("0 chart(s) failed");
    expect(r.status).toBe(0);
  });

  it.each(variants)(
    "kubeconform -strict - every object rendered with %s is valid against the Kubernetes API",
    (_label, files) => {
      const text = renderText({ files });
      const r = kubeconform(text, CRDS);
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(/Invalid: 0, Errors: 0/);
      const objects = parseObjects(text);
      const skipped = objects.filter((o) => CRDS.includes(o.kind)).length;
      expect(r.stdout).toContain(`Valid: ${objects.length - skipped},`);
      expect(r.status).toBe(0);
    },
  );

  it.each(variants)(
    "kubernetes-models - every object rendered with %s passes its validator",
    (_label, files) => {
      const text = renderText({ files });
      const r = validateModels(text);
      const results = r.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { kind: string; ok: boolean; error?: string });
      expect(results.filter((x) => !x.ok)).toEqual([]);
      expect(results).toHaveLength(parseObjects(text).length);
      expect(r.status).toBe(0);
    },
  );

  it("validators - both refuse what they are meant to catch (so the checks above can fail)", () => {
    const deployment = find(render(), "Deployment");
    // kubeconform: an unknown field.
    const unknownField = structuredClone(deployment);
    unknownField.spec.template.spec.containers[0].readinessProbes = {};
    const k = kubeconform(JSON.stringify(unknownField));
    expect(k.status).not.toBe(0);
    expect(k.stdout).toMatch(/readinessProbes/);
    // kubernetes-models: a bad enum value, which kubeconform lets through.
    const badEnum = structuredClone(deployment);
    badEnum.spec.strategy.type = "Sideways";
    expect(kubeconform(JSON.stringify(badEnum)).status).toBe(0);
    const m = validateModels(JSON.stringify(badEnum));
    expect(m.status).toBe(1);
    expect(m.stdout).toMatch(/strategy\/type must be equal to one of the allowed values/);
  });
});

describe("what the chart promises", () => {
  const objects = render();
  const deployment = find(objects, "Deployment");
  const pod = deployment.spec.template.spec;
  const container = gatewayContainer(objects);
  const env = configData(objects);

  it("service - the public Service has no session affinity and routes the public port only", () => {
    const svc = objects.find((o) => o.kind === "Service" && !o.metadata.name.endsWith("-admin"));
    expect(svc?.spec.sessionAffinity).toBe("None");
    expect(svc?.spec.ports).toEqual([
      expect.objectContaining({ name: "http", targetPort: "http" }),
    ]);
    expect(objects.filter((o) => o.kind === "Service")).toHaveLength(1);
    const ports = Object.fromEntries(
      container.ports.map((p: { name: string; containerPort: number }) => [
        p.name,
        p.containerPort,
      ]),
    );
    expect(ports).toEqual({ http: Number(env.PORT), admin: Number(env.ADMIN_PORT) });
    expect(env.PORT).not.toBe(env.ADMIN_PORT);
  });

  it("probes - startup and liveness on /livez, readiness on /readyz, all on the admin port", () => {
    expect(container.startupProbe.httpGet).toEqual({ path: "/livez", port: "admin" });
    expect(container.livenessProbe.httpGet).toEqual({ path: "/livez", port: "admin" });
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "admin" });
    // Readiness reacts within seconds; liveness tolerates a busy event loop for longer.
    expect(container.readinessProbe.periodSeconds).toBeLessThanOrEqual(5);
    expect(
      container.livenessProbe.periodSeconds * container.livenessProbe.failureThreshold,
    ).toBeGreaterThanOrEqual(20);
  });

  it("rollout - never below capacity: maxUnavailable 0, a surge, minReadySeconds", () => {
    expect(deployment.spec.strategy).toEqual({
      type: "RollingUpdate",
      rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
    });
    expect(deployment.spec.minReadySeconds).toBeGreaterThan(0);
  });

  it.each(variants)(
    "drain - with %s, preStop plus the gateway's shutdown bound fit the grace period",
    (_l, files) => {
      const objs = render({ files });
      const spec = find(objs, "Deployment").spec.template.spec;
      const data = configData(objs);
      const preStop = gatewayContainer(objs).lifecycle?.preStop?.sleep?.seconds ?? 0;
      const shutdownS = Math.ceil(Number(data.SHUTDOWN_TIMEOUT_MS) / 1000);
      expect(Number(data.DRAIN_WINDOW_MS)).toBeLessThan(Number(data.SHUTDOWN_TIMEOUT_MS));
      expect(spec.terminationGracePeriodSeconds).toBeGreaterThan(preStop + shutdownS);
    },
  );

  it("drain - the defaults: 5 s preStop, 10 s drain, 25 s bound, grace period derived as 35 s", () => {
    expect(container.lifecycle.preStop).toEqual({ sleep: { seconds: 5 } });
    expect(env.DRAIN_WINDOW_MS).toBe("10000");
    expect(env.SHUTDOWN_TIMEOUT_MS).toBe("25000");
    expect(pod.terminationGracePeriodSeconds).toBe(35);
  });

  it("security - restricted: non-root numeric user, read-only root, no capabilities, seccomp", () => {
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ["ALL"] },
    });
    expect(container.volumeMounts).toContainEqual({ name: "tmp", mountPath: "/tmp" });
    expect(pod.volumes).toContainEqual({ name: "tmp", emptyDir: { sizeLimit: "64Mi" } });
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(container.resources.requests).toEqual({ cpu: "250m", memory: "512Mi" });
  });

  it("spread - pods spread softly over nodes and zones", () => {
    const keys = pod.topologySpreadConstraints.map((c: { topologyKey: string }) => c.topologyKey);
    expect(keys).toEqual(["kubernetes.io/hostname", "topology.kubernetes.io/zone"]);
    for (const c of pod.topologySpreadConstraints) {
      expect(c.whenUnsatisfiable).toBe("ScheduleAnyway");
      expect(c.labelSelector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    }
  });

  it("checksums - a settings change changes the pod template, so the pods roll", () => {
    const a = find(render(), "Deployment").spec.template.metadata.annotations;
    const b = find(render({ set: ["config.heartbeatMs=20000"] }), "Deployment").spec.template
      .metadata.annotations;
    const c = find(render({ set: ["nats.auth.type=token", "nats.auth.token=x"] }), "Deployment")
      .spec.template.metadata.annotations;
    expect(a["checksum/config"]).toMatch(/^[0-9a-f]{64}$/);
    expect(b["checksum/config"]).not.toBe(a["checksum/config"]);
    expect(c["checksum/secret"]).not.toBe(a["checksum/secret"]);
  });

  it("pdb, service account, test pod - as documented", () => {
    expect(find(objects, "PodDisruptionBudget").spec).toEqual({
      maxUnavailable: 1,
      selector: { matchLabels: deployment.spec.selector.matchLabels },
    });
    expect(find(objects, "ServiceAccount").automountServiceAccountToken).toBe(false);
    const test = find(objects, "Pod", "-test-connection");
    expect(test.metadata.annotations?.["helm.sh/hook"]).toBe("test");
    // The Services must never route clients to the test pod.
    const selector = deployment.spec.selector.matchLabels as Record<string, string>;
    const matches = Object.entries(selector).every(([k, v]) => test.metadata.labels?.[k] === v);
    expect(matches).toBe(false);
    const url = test.spec.containers[0].env[0].value as string;
    expect(url).toBe("http://rel-jetstream-sse-gateway:80/events/healthcheck.helm-test");
    expect(test.spec.containers[0].command.join("\n")).toContain("retry:");
  });
});

describe("settings from values", () => {
  it("values - every gateway setting is reachable: config.<camelCase> or a chart-managed value", () => {
    for (const key of CONFIG_KEYS) {
      const reach =
        CHART_MANAGED[key] ?? (camel(key) in values.config ? `config.${camel(key)}` : undefined);
      expect(`${key} <- ${reach ?? "nothing"}`).not.toMatch(/nothing$/);
    }
    // And nothing under config.* that the gateway does not read.
    for (const k of Object.keys(values.config)) {
      expect(CONFIG_KEYS).toContain(k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase());
    }
  });

  it("values - config defaults are the gateway's own (natsUrl and trustProxy aside)", () => {
    const defaults = loadConfig({}) as Record<string, unknown>;
    const env = configData(render());
    for (const k of Object.keys(values.config)) {
      const key = k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
      if (key === "NATS_URL" || key === "TRUST_PROXY") continue;
      const d = defaults[key];
      expect(`${key}=${env[key]}`).toBe(`${key}=${Array.isArray(d) ? d.join(",") : String(d)}`);
    }
  });

  it("values - each config value lands in its environment variable, and the gateway accepts them", () => {
    // A distinct, valid value for every setting (numbers one above their default).
    const defaults = loadConfig({}) as Record<string, unknown>;
    const config: Record<string, unknown> = {};
    for (const k of Object.keys(values.config)) {
      const key = k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
      const d = defaults[key];
      config[k] =
        typeof d === "number" ? d + 1 : typeof d === "boolean" ? !d : `${key.toLowerCase()}-value`;
    }
    Object.assign(config, {
      natsUrl: "nats://a:4222,nats://b:4222",
      host: "::",
      adminHost: "127.0.0.1",
      logLevel: "debug",
      eventTypeHeader: "X-Event",
      corsOrigins: "https://a.example",
      shutdownTimeoutMs: 30000,
      // 0 derives these; a value given must make room for the connection limits.
      httpMaxSockets: 20000,
      httpMaxSocketsPerClient: 600,
      feedWatchdogMs: 7000, // at least 3 heartbeats (3 × 2001)
      clientLimitBy: "address",
      trustedProxies: "10.0.0.0/8,fd00::/8",
      subjectAllowlist: "orders.>,public.*",
      // One way to check tokens at a time: the JWKS URL here, the PEM key settings left out.
      authJwksUrl: "https://idp.example/.well-known/jwks.json",
      authJwtAlgorithms: "RS256,ES256",
      authJwtIssuer: "https://idp.example",
      authJwtAudience: "sse-gateway",
      authJwtSubscribeClaim: "perms",
      authCookie: "sse_token",
      authPublicSubjects: "public.>",
      // The chart refuses the demo together with authorization (its token endpoint).
      demo: false,
    });
    delete config.authJwtPublicKey;
    delete config.authJwtPublicKeyFile;
    const env = configData(render({ files: [writeValues({ config })] }));
    for (const [k, v] of Object.entries(config)) {
      const key = k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
      expect(`${key}=${env[key]}`).toBe(`${key}=${String(v)}`);
    }
    const parsed = loadConfig(env) as Record<string, unknown>;
    expect(parsed.MAX_CONNECTIONS).toBe(10_001);
    expect(parsed.TRUST_PROXY).toBe(true);
    expect(parsed.NATS_URL).toEqual(["nats://a:4222", "nats://b:4222"]);
  });

  it("trust proxy - off by default, on behind an Ingress or HTTPRoute, explicit wins", () => {
    expect(configData(render()).TRUST_PROXY).toBe("false");
    expect(
      configData(render({ files: [path.join(CI_VALUES_DIR, "ingress-tls.yaml")] })).TRUST_PROXY,
    ).toBe("true");
    expect(
      configData(render({ files: [path.join(CI_VALUES_DIR, "httproute.yaml")] })).TRUST_PROXY,
    ).toBe("true");
    expect(
      configData(
        render({
          files: [path.join(CI_VALUES_DIR, "ingress-tls.yaml")],
          set: ["config.trustProxy=false"],
        }),
      ).TRUST_PROXY,
    ).toBe("false");
  });

  it("authorization - the JWT secret lives in a Secret (the chart's or an existing one), never in the ConfigMap", () => {
    const own = render({ set: ["auth.jwtSecret=s3cret-0123456789-0123456789-0123456789"] });
    expect(gatewayContainer(own).env).toContainEqual({
      name: "AUTH_JWT_SECRET",
      valueFrom: { secretKeyRef: { name: "rel-jetstream-sse-gateway-auth", key: "jwt-secret" } },
    });
    const secret = own.find(
      (o) => o.kind === "Secret" && o.metadata.name === "rel-jetstream-sse-gateway-auth",
    );
    expect(Buffer.from(secret?.data["jwt-secret"] as string, "base64").toString()).toBe(
      "s3cret-0123456789-0123456789-0123456789",
    );
    expect(JSON.stringify(find(own, "ConfigMap"))).not.toContain("s3cret");

    const existing = render({ set: ["auth.existingSecret=my-jwt"] });
    expect(gatewayContainer(existing).env).toContainEqual({
      name: "AUTH_JWT_SECRET",
      valueFrom: { secretKeyRef: { name: "my-jwt", key: "jwt-secret" } },
    });
    expect(existing.filter((o) => o.kind === "Secret")).toEqual([]);

    // Off by default: no variable, no Secret.
    const none = render();
    expect((gatewayContainer(none).env ?? []).map((e: { name: string }) => e.name)).not.toContain(
      "AUTH_JWT_SECRET",
    );
    expect(none.filter((o) => o.kind === "Secret")).toEqual([]);
  });

  it("nats auth - a token or user/password comes from the Secret, a .creds file is mounted", () => {
    const token = render({ files: [path.join(CI_VALUES_DIR, "token.yaml")] });
    expect(gatewayContainer(token).env).toContainEqual({
      name: "NATS_TOKEN",
      valueFrom: { secretKeyRef: { name: "rel-jetstream-sse-gateway-nats-auth", key: "token" } },
    });
    expect(Buffer.from(find(token, "Secret").data.token, "base64").toString()).toBe("t0ken");

    const up = render({ files: [path.join(CI_VALUES_DIR, "inline-secrets.yaml")] });
    const names = gatewayContainer(up).env.map((e: { name: string }) => e.name);
    expect(names).toEqual(["NATS_USER", "NATS_PASSWORD"]);

    const creds = render({ files: [path.join(CI_VALUES_DIR, "existing-secrets.yaml")] });
    const c = gatewayContainer(creds);
    const data = configData(creds);
    expect(data.NATS_CREDS_FILE).toBe("/etc/nats-auth/nats.creds");
    expect(c.volumeMounts).toContainEqual({
      name: "nats-auth",
      mountPath: "/etc/nats-auth",
      readOnly: true,
    });
    const vols = find(creds, "Deployment").spec.template.spec.volumes as {
      name: string;
      secret?: { secretName: string };
    }[];
    expect(vols.find((v) => v.name === "nats-auth")?.secret?.secretName).toBe("nats-user-creds");
    // An existing Secret means the chart makes none.
    expect(creds.filter((o) => o.kind === "Secret")).toEqual([]);
  });

  it("nats tls - the CA and client certificate are mounted and named in the settings", () => {
    const objs = render({ files: [path.join(CI_VALUES_DIR, "existing-secrets.yaml")] });
    const data = configData(objs);
    expect(data).toMatchObject({
      NATS_TLS_CA_FILE: "/etc/nats-tls/ca.crt",
      NATS_TLS_CERT_FILE: "/etc/nats-tls/tls.crt",
      NATS_TLS_KEY_FILE: "/etc/nats-tls/tls.key",
    });
    const vol = find(objs, "Deployment").spec.template.spec.volumes.find(
      (v: { name: string }) => v.name === "nats-tls",
    );
    expect(vol.secret.secretName).toBe("nats-client-tls");
    expect(vol.secret.items.map((i: { key: string }) => i.key)).toEqual([
      "ca.crt",
      "tls.crt",
      "tls.key",
    ]);
    expect(() => loadConfig(data)).not.toThrow();

    const inline = render({ files: [path.join(CI_VALUES_DIR, "inline-secrets.yaml")] });
    expect(configData(inline).NATS_TLS_CERT_FILE).toBeUndefined();
    expect(find(inline, "Secret", "-nats-tls").data["ca.crt"]).toBeDefined();
  });

  it("otel - the exporter settings become OTEL_* variables", () => {
    const data = configData(render({ files: [path.join(CI_VALUES_DIR, "monitoring.yaml")] }));
    expect(data).toMatchObject({
      OTEL_TRACES_EXPORTER: "otlp",
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel-collector.observability:4318",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.25",
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=prod",
    });
    expect(configData(render()).OTEL_TRACES_EXPORTER).toBeUndefined();
  });
});

describe("optional objects", () => {
  it("ingress - SSE-safe ingress-nginx annotations and the public Service as backend", () => {
    const objs = render({ files: [path.join(CI_VALUES_DIR, "ingress-tls.yaml")] });
    const ing = find(objs, "Ingress");
    expect(ing.metadata.annotations).toMatchObject({
      "nginx.ingress.kubernetes.io/proxy-buffering": "off",
      "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
      "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
      "cert-manager.io/cluster-issuer": "letsencrypt",
    });
    expect(ing.spec.rules[0].http.paths[0].backend.service).toEqual({
      name: "rel-jetstream-sse-gateway",
      port: { number: 80 },
    });
    expect(ing.spec.tls[0].secretName).toBe("sse-example-tls");
  });

  it("httproute - attached to the given Gateway with no request timeout", () => {
    const route = find(
      render({ files: [path.join(CI_VALUES_DIR, "httproute.yaml")] }),
      "HTTPRoute",
    );
    expect(route.spec.parentRefs).toEqual([{ name: "public", namespace: "gateway-system" }]);
    expect(route.spec.rules[0].timeouts).toEqual({ request: "0s" });
    expect(route.spec.rules[0].backendRefs).toEqual([
      { name: "rel-jetstream-sse-gateway", port: 80 },
    ]);
  });

  it("hpa - CPU and open connections per pod; no fixed replica count", () => {
    const objs = render({ files: [path.join(CI_VALUES_DIR, "hpa.yaml")] });
    const hpa = find(objs, "HorizontalPodAutoscaler");
    expect(hpa.spec.minReplicas).toBe(3);
    expect(hpa.spec.metrics).toEqual([
      {
        type: "Resource",
        resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 60 } },
      },
      {
        type: "Pods",
        pods: {
          metric: { name: "sse_sessions" },
          target: { type: "AverageValue", averageValue: "4000" },
        },
      },
    ]);
    expect(find(objs, "Deployment").spec.replicas).toBeUndefined();
    expect(find(objs, "PodDisruptionBudget").spec.minAvailable).toBe(2);
  });

  it("monitoring - the ServiceMonitor scrapes /metrics on the admin Service, which only it selects", () => {
    const objs = render({ files: [path.join(CI_VALUES_DIR, "monitoring.yaml")] });
    const sm = find(objs, "ServiceMonitor");
    expect(sm.spec.endpoints).toEqual([
      { port: "admin", path: "/metrics", interval: "30s", scrapeTimeout: "10s" },
    ]);
    expect(sm.metadata.labels?.release).toBe("kube-prometheus-stack");
    const selected = objs.filter(
      (o) =>
        o.kind === "Service" &&
        Object.entries(sm.spec.selector.matchLabels as Record<string, string>).every(
          ([k, v]) => o.metadata.labels?.[k] === v,
        ),
    );
    expect(selected.map((s) => s.metadata.name)).toEqual(["rel-jetstream-sse-gateway-admin"]);
    expect(selected[0]?.spec.ports).toEqual([
      { name: "admin", port: 9090, targetPort: "admin", protocol: "TCP" },
    ]);
  });

  it("network policy - public port from the ingress namespace, admin port from monitoring, egress to DNS, NATS, OTLP", () => {
    const np = find(
      render({ files: [path.join(CI_VALUES_DIR, "monitoring.yaml")] }),
      "NetworkPolicy",
    );
    expect(np.spec.policyTypes).toEqual(["Ingress", "Egress"]);
    expect(np.spec.ingress.map((r: { ports: { port: string }[] }) => r.ports[0]?.port)).toEqual([
      "http",
      "admin",
    ]);
    expect(np.spec.ingress[1].from[0].namespaceSelector.matchLabels).toEqual({
      "kubernetes.io/metadata.name": "monitoring",
    });
    const egressPorts = np.spec.egress.flatMap((r: { ports: { port: number }[] }) =>
      r.ports.map((p) => p.port),
    );
    expect(egressPorts).toEqual([53, 53, 4222, 4317, 4318]);
  });
});

describe("bad values are refused with a clear message", () => {
  it.each([
    [
      "a string where a number belongs",
      ["config.maxConnections=lots"],
      /config\/maxConnections.*want integer/,
    ],
    [
      "an unknown key",
      ["config.maxConections=5"],
      /additional properties 'maxConections' not allowed/,
    ],
    ["an unknown top-level key", ["replicas=3"], /additional properties 'replicas' not allowed/],
    ["a log level that does not exist", ["config.logLevel=verbose"], /config\/logLevel/],
    ["a Service type that does not exist", ["service.type=Ingress"], /service\/type/],
    [
      "a heartbeat under the gateway's minimum",
      ["config.heartbeatMs=10"],
      /config\/heartbeatMs.*minimum/,
    ],
    [
      "a grace period too short for the drain",
      ["lifecycle.terminationGracePeriodSeconds=20"],
      /terminationGracePeriodSeconds \(20\) is too short for the drain: .* 31 seconds are needed/,
    ],
    [
      "a drain window as long as the shutdown bound",
      ["config.drainWindowMs=25000"],
      /config.drainWindowMs \(25000\) must be less than config.shutdownTimeoutMs/,
    ],
    [
      "token auth without a token",
      ["nats.auth.type=token"],
      /set nats.auth.token or nats.auth.existingSecret/,
    ],
    ["TLS without a CA", ["nats.tls.enabled=true"], /set nats.tls.ca/],
    ["the admin port equal to the public port", ["containerPorts.admin=8080"], /must differ/],
    ["an HTTPRoute without a Gateway", ["httpRoute.enabled=true"], /set httpRoute.parentRefs/],
    [
      "an HPA whose minimum exceeds its maximum",
      ["autoscaling.enabled=true", "autoscaling.minReplicas=5", "autoscaling.maxReplicas=2"],
      /minReplicas must not exceed/,
    ],
    [
      "the demo with authorization (its endpoint mints tokens for anyone)",
      ["config.demo=true", "auth.jwtSecret=0123456789abcdef0123456789abcdef"],
      /config.demo with authorization on would serve \/demo\/token/,
    ],
    [
      "a client-limit key that does not exist",
      ["config.clientLimitBy=ip"],
      /config\/clientLimitBy/,
    ],
  ])("refuses %s", (_what, set, message) => {
    expect(() => renderText({ set })).toThrow(message);
  });
});

describe("documentation", () => {
  it("chart README - its values table is generated from values.yaml and up to date", () => {
    const r = run(process.execPath, [
      path.join(REPO_ROOT, "scripts", "chart-readme.mjs"),
      "--check",
    ]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("values.schema.json - describes exactly the keys values.yaml has", () => {
    const schema = JSON.parse(fs.readFileSync(path.join(CHART, "values.schema.json"), "utf8"));
    const all = parse(fs.readFileSync(path.join(CHART, "values.yaml"), "utf8")) as Record<
      string,
      unknown
    >;
    const missing: string[] = [];
    const walk = (
      node: unknown,
      s: { properties?: Record<string, unknown>; additionalProperties?: unknown },
      at: string,
    ) => {
      if (node === null || typeof node !== "object" || Array.isArray(node) || !s.properties) return;
      expect(`${at}: additionalProperties ${String(s.additionalProperties)}`).toBe(
        `${at}: additionalProperties false`,
      );
      for (const [k, v] of Object.entries(node)) {
        const sub = s.properties[k] as typeof s | undefined;
        if (!sub) missing.push(`${at}${k}`);
        else walk(v, sub, `${at}${k}.`);
      }
    };
    walk(all, schema, "");
    expect(missing).toEqual([]);
  });

  it("NOTES - tells how to reach the gateway, its probes and the drain", () => {
    const notes = renderNotes();
    expect(notes).toContain(
      "kubectl -n default port-forward svc/rel-jetstream-sse-gateway 8080:80",
    );
    expect(notes).toContain("curl http://127.0.0.1:9090/readyz");
    expect(notes).toContain("grace period 35 s");
    const viaIngress = renderNotes([
      "ingress.enabled=true",
      "ingress.hosts[0].host=sse.test",
      "ingress.hosts[0].paths[0].path=/events",
      "ingress.hosts[0].paths[0].pathType=Prefix",
    ]);
    expect(viaIngress).toContain("curl -N http://sse.test/events/<subject>");
  });
});
