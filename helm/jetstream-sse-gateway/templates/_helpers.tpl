{{/* Chart name, overridable. */}}
{{- define "gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gateway.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "gateway.labels" -}}
{{ include "gateway.commonLabels" . }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gateway.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret holding NATS credentials: the user's, or the chart's own. */}}
{{- define "gateway.authSecret" -}}
{{- default (printf "%s-nats-auth" (include "gateway.fullname" .)) .Values.nats.auth.existingSecret }}
{{- end }}

{{- define "gateway.tlsSecret" -}}
{{- default (printf "%s-nats-tls" (include "gateway.fullname" .)) .Values.nats.tls.existingSecret }}
{{- end }}

{{/* TRUST_PROXY: explicit, or on when an Ingress or HTTPRoute puts a proxy in front. */}}
{{- define "gateway.trustProxy" -}}
{{- if kindIs "invalid" .Values.config.trustProxy }}
{{- or .Values.ingress.enabled .Values.httpRoute.enabled }}
{{- else }}
{{- .Values.config.trustProxy }}
{{- end }}
{{- end }}

{{/*
Grace period: explicit, or derived from the drain so that preStop + the gateway's own shutdown
bound always fit, with 5 s to spare for the kubelet.
*/}}
{{- define "gateway.gracePeriod" -}}
{{- $shutdown := divf .Values.config.shutdownTimeoutMs 1000 | ceil | int }}
{{- $need := add .Values.lifecycle.preStopSleepSeconds $shutdown }}
{{- if kindIs "invalid" .Values.lifecycle.terminationGracePeriodSeconds }}
{{- add $need 5 }}
{{- else }}
{{- .Values.lifecycle.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/* Refuses values that would make a drain impossible or the pod unreachable. */}}
{{- define "gateway.validate" -}}
{{- $c := .Values.config }}
{{- if ge (int64 $c.drainWindowMs) (int64 $c.shutdownTimeoutMs) }}
{{- fail (printf "config.drainWindowMs (%v) must be less than config.shutdownTimeoutMs (%v): the gateway closes its sessions over the drain window and must still have time to close NATS before it exits" $c.drainWindowMs $c.shutdownTimeoutMs) }}
{{- end }}
{{- $shutdown := divf $c.shutdownTimeoutMs 1000 | ceil | int }}
{{- $need := add .Values.lifecycle.preStopSleepSeconds $shutdown }}
{{- $grace := include "gateway.gracePeriod" . | int }}
{{- if lt $grace (int (add $need 1)) }}
{{- fail (printf "lifecycle.terminationGracePeriodSeconds (%d) is too short for the drain: preStopSleepSeconds (%d) + ceil(config.shutdownTimeoutMs / 1000) (%d) + 1 = %d seconds are needed, or Kubernetes kills pods mid-drain and their clients reconnect all at once. Raise it, lower config.shutdownTimeoutMs / lifecycle.preStopSleepSeconds, or leave it null to derive it." $grace (int .Values.lifecycle.preStopSleepSeconds) $shutdown (int (add $need 1))) }}
{{- end }}
{{- if eq (int .Values.containerPorts.http) (int .Values.containerPorts.admin) }}
{{- fail "containerPorts.http and containerPorts.admin must differ: probes and metrics have a port of their own" }}
{{- end }}
{{- $a := .Values.nats.auth }}
{{- if not $a.existingSecret }}
{{- if and (eq $a.type "token") (not $a.token) }}
{{- fail "nats.auth.type is token: set nats.auth.token or nats.auth.existingSecret" }}
{{- end }}
{{- if and (eq $a.type "userPassword") (or (not $a.user) (not $a.password)) }}
{{- fail "nats.auth.type is userPassword: set nats.auth.user and nats.auth.password, or nats.auth.existingSecret" }}
{{- end }}
{{- if and (eq $a.type "creds") (not $a.creds) }}
{{- fail "nats.auth.type is creds: set nats.auth.creds (the .creds file's contents) or nats.auth.existingSecret" }}
{{- end }}
{{- end }}
{{- $t := .Values.nats.tls }}
{{- if and $t.enabled (not $t.existingSecret) }}
{{- if not $t.ca }}
{{- fail "nats.tls.enabled: set nats.tls.ca (PEM) or nats.tls.existingSecret" }}
{{- end }}
{{- if and $t.clientCert (or (not $t.cert) (not $t.key)) }}
{{- fail "nats.tls.clientCert: set nats.tls.cert and nats.tls.key (PEM) or nats.tls.existingSecret" }}
{{- end }}
{{- end }}
{{- $c := .Values.config }}
{{- if and $c.demo (or .Values.auth.jwtSecret .Values.auth.existingSecret $c.authJwtPublicKey $c.authJwtPublicKeyFile $c.authJwksUrl) }}
{{- fail "config.demo with authorization on would serve /demo/token, which mints tokens for any subject to anyone: the demo is for local development (make dev), not a deployment" }}
{{- end }}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) }}
{{- fail "httpRoute.enabled: set httpRoute.parentRefs to the Gateway(s) to attach to" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (kindIs "invalid" .Values.autoscaling.targetCPUUtilizationPercentage) (not .Values.autoscaling.connections.enabled) }}
{{- fail "autoscaling.enabled: give it a metric: targetCPUUtilizationPercentage and/or connections.enabled" }}
{{- end }}
{{- end }}
