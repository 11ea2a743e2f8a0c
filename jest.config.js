// One project per level so `make test` runs everything while each level can run alone.
// TypeScript is transformed by SWC (no type-check here: `make lint` runs tsc).
const transform = { "^.+\\.ts$": ["@swc/jest", { jsc: { target: "es2023" } }] };
const common = { testEnvironment: "node", transform, moduleFileExtensions: ["ts", "js", "json"] };

/** @type {import('jest').Config} */
module.exports = {
  // Per-project testTimeout is not honoured by Jest; the integration and browser suites talk to
  // real servers, so the bound is set for all (unit tests finish in milliseconds anyway).
  testTimeout: 60_000,
  projects: [
    { ...common, displayName: "unit", testMatch: ["<rootDir>/test/unit/**/*.test.ts"] },
    {
      ...common,
      displayName: "integration",
      testMatch: ["<rootDir>/test/integration/**/*.test.ts"],
    },
    {
      ...common,
      displayName: "browser",
      testMatch: ["<rootDir>/test/browser/**/*.test.ts"],
    },
    // The container image's file tree, run read-only as a non-root user (bubblewrap).
    { ...common, displayName: "image", testMatch: ["<rootDir>/test/image/**/*.test.ts"] },
    // The Helm chart rendered and validated offline (helm, kubeconform, kubernetes-models).
    { ...common, displayName: "chart", testMatch: ["<rootDir>/test/chart/**/*.test.ts"] },
    // Rolling restarts behind a load balancer, driven by the chart's rendered values.
    { ...common, displayName: "rollout", testMatch: ["<rootDir>/test/rollout/**/*.test.ts"] },
    // A real Kubernetes control plane with kwok nodes (`make test-k8s`).
    { ...common, displayName: "k8s", testMatch: ["<rootDir>/test/k8s/**/*.test.ts"] },
  ],
};
