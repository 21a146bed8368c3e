{{- define "kms-pam-server.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kms-pam-server.fullname" -}}
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

{{- define "kms-pam-server.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kms-pam-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kms-pam-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kms-pam-server.labels" -}}
helm.sh/chart: {{ include "kms-pam-server.chart" . }}
{{ include "kms-pam-server.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: kms
app.kubernetes.io/part-of: kms-pam
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kms-pam-server.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kms-pam-server.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kms-pam-server.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* SQLite: no database Secret. */}}
{{- define "kms-pam-server.sqlite" -}}
{{- if not .Values.database.existingSecret }}true{{ end }}
{{- end }}

{{/* The data dir's PVC (SQLite only). */}}
{{- define "kms-pam-server.claimName" -}}
{{- default (printf "%s-data" (include "kms-pam-server.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/* Refuses values that cannot give a working KMS, each with what to do instead. */}}
{{- define "kms-pam-server.validate" -}}
{{- $sqlite := include "kms-pam-server.sqlite" . }}
{{- if and $sqlite (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount %d needs PostgreSQL: SQLite is one process; set database.existingSecret to a Secret holding the postgres:// URL, or keep replicaCount 1" (int .Values.replicaCount)) }}
{{- end }}
{{- if and $sqlite (not .Values.persistence.enabled) }}
{{- fail "persistence.enabled=false with SQLite: the database (and the root key) would be lost with the pod; keep persistence.enabled=true, or use PostgreSQL (database.existingSecret)" }}
{{- end }}
{{- if and (not $sqlite) (not .Values.rootKey.existingSecret) }}
{{- fail "PostgreSQL needs rootKey.existingSecret: every replica must be given the same root key and KMS audit key (a Secret with root.key and audit.key), which an emptyDir data dir would lose" }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) }}
{{- fail "ingress.enabled=true needs ingress.hosts" }}
{{- end }}
{{- end }}
