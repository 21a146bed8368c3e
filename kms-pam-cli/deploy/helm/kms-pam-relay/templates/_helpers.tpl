{{- define "kms-pam-relay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kms-pam-relay.fullname" -}}
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

{{- define "kms-pam-relay.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kms-pam-relay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kms-pam-relay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kms-pam-relay.labels" -}}
helm.sh/chart: {{ include "kms-pam-relay.chart" . }}
{{ include "kms-pam-relay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: relay
app.kubernetes.io/part-of: kms-pam
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kms-pam-relay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kms-pam-relay.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kms-pam-relay.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret with the relay's certificate, key and the KMS CA. */}}
{{- define "kms-pam-relay.certificateSecret" -}}
{{- default (printf "%s-certificate" (include "kms-pam-relay.fullname" .)) .Values.certificate.existingSecret }}
{{- end }}
