{{/* The chart's name. */}}
{{- define "kms-pam-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: the StatefulSet's name, so part of every PVC's name
(data-FULLNAME-0): it depends on the release name and the overrides only, never on other values.
*/}}
{{- define "kms-pam-gateway.fullname" -}}
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

{{- define "kms-pam-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kms-pam-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kms-pam-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kms-pam-gateway.labels" -}}
helm.sh/chart: {{ include "kms-pam-gateway.chart" . }}
{{ include "kms-pam-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: gateway
app.kubernetes.io/part-of: kms-pam
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kms-pam-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kms-pam-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kms-pam-gateway.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The gateway's name in KMS: `name`, else the full name. */}}
{{- define "kms-pam-gateway.gatewayName" -}}
{{- default (include "kms-pam-gateway.fullname" .) .Values.name }}
{{- end }}

{{/* The Secret holding the enrollment token(s). */}}
{{- define "kms-pam-gateway.enrollmentSecret" -}}
{{- if .Values.enrollment.existingSecret }}
{{- .Values.enrollment.existingSecret }}
{{- else }}
{{- printf "%s-enrollment" (include "kms-pam-gateway.fullname" .) }}
{{- end }}
{{- end }}

{{/* The key of the token in that Secret (per replica: KEY-0, KEY-1, ...). */}}
{{- define "kms-pam-gateway.enrollmentKey" -}}
{{- if .Values.enrollment.existingSecret }}
{{- .Values.enrollment.existingSecretKey }}
{{- else }}
{{- "token" }}
{{- end }}
{{- end }}

{{/* The ports of a list of HOST:PORT addresses, each once. */}}
{{- define "kms-pam-gateway.ports" -}}
{{- $ports := list }}
{{- range . }}
{{- $ports = append $ports (regexFind "[0-9]+$" .) }}
{{- end }}
{{- $ports | uniq | join "," }}
{{- end }}

{{/* The ports of kms.url's URLs (the scheme's port when a URL names none). */}}
{{- define "kms-pam-gateway.kmsPorts" -}}
{{- $ports := list }}
{{- range splitList "," .Values.kms.url }}
{{- $url := urlParse (trim .) }}
{{- $port := regexFind ":[0-9]+$" $url.host | trimPrefix ":" }}
{{- if not $port }}
{{- $port = ternary "80" "443" (eq $url.scheme "http") }}
{{- end }}
{{- $ports = append $ports $port }}
{{- end }}
{{- $ports | uniq | join "," }}
{{- end }}

{{/*
Refuses values that cannot give a working gateway, each with what to do instead.
*/}}
{{- define "kms-pam-gateway.validate" -}}
{{- $e := .Values.enrollment }}
{{- if not .Values.kms.url }}
{{- fail "kms.url is required: the KMS base URL the gateway enrolls with (https://kms.example.com; several replicas' URLs separated by commas)" }}
{{- end }}
{{- if not (or $e.existingSecret $e.token $e.tokens) }}
{{- fail "no enrollment token: set enrollment.existingSecret to a Secret holding the one-time token that `kms-pam gateway create NAME` printed, or give it inline as enrollment.token" }}
{{- end }}
{{- if not .Values.persistence.enabled }}
{{- fail "persistence.enabled=false with an enrollment token: the token is one-time, so a restarted pod, with an empty data dir, could not enroll again; keep persistence.enabled=true (one PVC per replica keeps the gateway's identity)" }}
{{- end }}
{{- if and $e.existingSecret (or $e.token $e.tokens) }}
{{- fail "enrollment.existingSecret and an inline enrollment.token/tokens are both set: give one of them" }}
{{- end }}
{{- if and $e.token $e.tokens }}
{{- fail "enrollment.token and enrollment.tokens are both set: give one of them" }}
{{- end }}
{{- if and $e.token (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "enrollment.token enrolls one gateway, but replicaCount is %d: every replica is a gateway of its own (NAME-0 ...), so give enrollment.tokens, one per replica" (int .Values.replicaCount)) }}
{{- end }}
{{- if and $e.tokens (ne (len $e.tokens) (int .Values.replicaCount)) }}
{{- fail (printf "enrollment.tokens has %d token(s) for replicaCount %d: give one per replica" (len $e.tokens) (int .Values.replicaCount)) }}
{{- end }}
{{- if and (not .Values.relays) (not .Values.direct.enabled) }}
{{- fail "no relays and direct mode off: CLIs could not reach the gateway; give relays (HOST:PORT of each relay, the default relay mode) or set direct.enabled=true with direct.advertise" }}
{{- end }}
{{- if and .Values.direct.enabled (not .Values.direct.advertise) }}
{{- fail "direct.enabled=true needs direct.advertise: the HOST:PORT CLIs dial to reach this gateway (its Service's external name and port)" }}
{{- end }}
{{- if and .Values.direct.enabled (gt (int .Values.replicaCount) 1) }}
{{- fail "direct mode with replicaCount > 1: every replica is a gateway of its own and needs an address of its own, which one Service cannot give; use relays, or one release per gateway" }}
{{- end }}
{{- if and .Values.kms.ca.configMap .Values.kms.ca.secret }}
{{- fail "kms.ca.configMap and kms.ca.secret are both set: give the KMS CA from one of them" }}
{{- end }}
{{- end }}
