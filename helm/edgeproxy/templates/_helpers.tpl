{{/* The chart name, or nameOverride. */}}
{{- define "edgeproxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name: the release name alone when it already contains the chart name. */}}
{{- define "edgeproxy.fullname" -}}
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

{{- define "edgeproxy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "edgeproxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edgeproxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "edgeproxy.labels" -}}
helm.sh/chart: {{ include "edgeproxy.chart" . }}
{{ include "edgeproxy.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "edgeproxy.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The data listener's port, which the application's base URLs point at. */}}
{{- define "edgeproxy.dataPort" -}}
{{- int (dig "server" "port" 8080 .Values.config) }}
{{- end }}

{{/* The admin listener's port, which serves the probes; refuses a config without it. */}}
{{- define "edgeproxy.adminPort" -}}
{{- if eq (toString (dig "admin" "enabled" true .Values.config)) "false" }}
{{- fail "config.admin.enabled must stay true: the probes use the admin listener" }}
{{- end }}
{{- int (dig "admin" "port" 9090 .Values.config) }}
{{- end }}

{{/* The Secret holding the provider keys: the chart's own, an existing one, or none (""). */}}
{{- define "edgeproxy.secretName" -}}
{{- if .Values.providerSecrets }}
{{- printf "%s-providers" (include "edgeproxy.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- .Values.secrets.existingSecret }}
{{- end }}
{{- end }}

{{/*
The edgeproxy configuration as YAML. Everything but `models` is toYaml of .Values.config;
`models` is written in routing order, because Helm keeps no map order and edgeproxy tries
patterns in the order written: exact names, then patterns with the most literal characters
first (claude-* before *).
*/}}
{{- define "edgeproxy.config" -}}
{{- $config := .Values.config | default dict }}
{{- $rest := omit $config "models" }}
{{- if $rest }}
{{ toYaml $rest }}
{{- end }}
{{- with $config.models }}
{{- $models := . }}
{{- $exact := list }}
{{- $patterns := list }}
{{- range $name, $_ := $models }}
{{- if or (contains "*" $name) (contains "?" $name) }}
{{- $literal := len (replace "*" "" $name | replace "?" "") }}
{{- $patterns = append $patterns (printf "%06d:%s" (sub 100000 $literal) $name) }}
{{- else }}
{{- $exact = append $exact $name }}
{{- end }}
{{- end }}
models:
{{- range $name := sortAlpha $exact }}
  {{ toJson $name }}:
    {{- toYaml (get $models $name) | nindent 4 }}
{{- end }}
{{- range $key := sortAlpha $patterns }}
{{- $name := substr 7 -1 $key }}
  {{ toJson $name }}:
    {{- toYaml (get $models $name) | nindent 4 }}
{{- end }}
{{- end }}
{{- end }}

{{/* The edgeproxy container; placed in containers, or in initContainers as a native sidecar. */}}
{{- define "edgeproxy.proxyContainer" -}}
{{- $secretName := include "edgeproxy.secretName" . }}
{{- if not (has .Values.secrets.mode (list "env" "files")) }}
{{- fail (printf "secrets.mode must be env or files, not %q" (toString .Values.secrets.mode)) }}
{{- end }}
name: edgeproxy
image: {{ include "edgeproxy.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
{{- if .Values.proxy.nativeSidecar }}
restartPolicy: Always
{{- end }}
args: ["serve"]
env:
  - name: EDGEPROXY_CONFIG
    value: /etc/edgeproxy/edgeproxy.yaml
{{- if and $secretName (eq .Values.secrets.mode "env") }}
{{- $keys := concat (keys (.Values.providerSecrets | default dict)) (.Values.secrets.keys | default list) | uniq | sortAlpha }}
{{- range $keys }}
  - name: {{ . }}
    valueFrom:
      secretKeyRef:
        name: {{ $secretName }}
        key: {{ . }}
        optional: true
{{- end }}
{{- end }}
{{- with .Values.proxy.env }}
{{- toYaml . | nindent 2 }}
{{- end }}
ports:
  # The data listener (config.server.port) binds loopback and is deliberately not declared.
  - name: admin
    containerPort: {{ include "edgeproxy.adminPort" . }}
    protocol: TCP
startupProbe:
  httpGet:
    path: /healthz
    port: admin
  {{- toYaml .Values.proxy.startupProbe | nindent 2 }}
livenessProbe:
  httpGet:
    path: /healthz
    port: admin
  {{- toYaml .Values.proxy.livenessProbe | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: admin
  {{- toYaml .Values.proxy.readinessProbe | nindent 2 }}
{{- if and (not .Values.proxy.nativeSidecar) (gt (int .Values.proxy.preStopSleepSeconds) 0) }}
lifecycle:
  preStop:
    sleep:
      seconds: {{ int .Values.proxy.preStopSleepSeconds }}
{{- end }}
resources:
  {{- toYaml .Values.proxy.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.proxy.securityContext | nindent 2 }}
volumeMounts:
  - name: config
    mountPath: /etc/edgeproxy
    readOnly: true
  - name: tmp
    mountPath: /tmp
{{- if and $secretName (eq .Values.secrets.mode "files") }}
  - name: provider-secrets
    mountPath: {{ .Values.secrets.mountPath }}
    readOnly: true
{{- end }}
{{- end }}

{{/* The injector's name: its Deployment, Service, certificate and webhook configuration. */}}
{{- define "edgeproxy.injectorName" -}}
{{- printf "%s-injector" (include "edgeproxy.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Apart from the sidecar pods' labels, so that the admin Service never selects the injector. */}}
{{- define "edgeproxy.injectorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "edgeproxy.name" . }}-injector
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "edgeproxy.injectorLabels" -}}
helm.sh/chart: {{ include "edgeproxy.chart" . }}
{{ include "edgeproxy.injectorSelectorLabels" . }}
app.kubernetes.io/component: injector
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* injector.nativeSidecar resolved: auto is true from Kubernetes 1.29, which has native sidecars. */}}
{{- define "edgeproxy.injectorNativeSidecar" -}}
{{- $choice := toString .Values.injector.nativeSidecar }}
{{- if eq $choice "auto" }}
{{- semverCompare ">=1.29-0" .Capabilities.KubeVersion.Version }}
{{- else if has $choice (list "true" "false") }}
{{- $choice }}
{{- else }}
{{- fail (printf "injector.nativeSidecar must be auto, true or false, not %q" $choice) }}
{{- end }}
{{- end }}

{{/* The TLS Secret the injector serves from: cert-manager's, or the operator's own. */}}
{{- define "edgeproxy.injectorTlsSecret" -}}
{{- if .Values.injector.tls.certManager.enabled }}
{{- printf "%s-tls" (include "edgeproxy.injectorName" .) }}
{{- else if and .Values.injector.tls.secretName .Values.injector.tls.caBundle }}
{{- .Values.injector.tls.secretName }}
{{- else }}
{{- fail "injector.tls: without certManager.enabled, give both secretName and caBundle" }}
{{- end }}
{{- end }}

{{/* The injector's settings file (edgeproxy/injector/settings.py reads it). */}}
{{- define "edgeproxy.injectorSettings" -}}
{{- $sidecar := .Values.injector.sidecar }}
image: {{ include "edgeproxy.image" . | quote }}
image_pull_policy: {{ .Values.image.pullPolicy }}
config_map: {{ $sidecar.configMap | quote }}
secret: {{ $sidecar.secret | default "" | quote }}
port: {{ include "edgeproxy.dataPort" . }}
admin_port: {{ include "edgeproxy.adminPort" . }}
native_sidecar: {{ include "edgeproxy.injectorNativeSidecar" . }}
pre_stop_seconds: {{ int .Values.proxy.preStopSleepSeconds }}
resources:
  {{- toYaml ($sidecar.resources | default .Values.proxy.resources) | nindent 2 }}
probes:
{{- range $kind := list "startup" "liveness" "readiness" }}
{{- $probe := get $.Values.proxy (printf "%sProbe" $kind) }}
  {{ $kind }}:
    period_seconds: {{ int $probe.periodSeconds }}
    timeout_seconds: {{ int $probe.timeoutSeconds }}
    failure_threshold: {{ int $probe.failureThreshold }}
{{- end }}
{{- with $sidecar.env }}
env:
  {{- range $name, $value := . }}
  {{ $name | quote }}: {{ toString $value | quote }}
  {{- end }}
{{- end }}
{{- end }}
