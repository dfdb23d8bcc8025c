{{/*
Object names derive from the release name: `scangate` gives the names deploy/ uses.
*/}}
{{- define "scangate.fullname" -}}
{{- if contains "scangate" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-scangate" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The Deployment's selector, as deploy/'s (selectors cannot change after install). */}}
{{- define "scangate.selectorLabels" -}}
app.kubernetes.io/name: scangate
{{- end -}}

{{/* Every object's labels: deploy/'s, plus Helm's. */}}
{{- define "scangate.labels" -}}
{{ include "scangate.selectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "scangate.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "scangate.namespace" -}}
{{ .Values.admission.scangateNamespace | default .Release.Namespace }}
{{- end -}}

{{- define "scangate.serviceName" -}}
{{ include "scangate.fullname" . }}-webhook
{{- end -}}

{{- define "scangate.tlsSecret" -}}
{{ include "scangate.fullname" . }}-webhook-tls
{{- end -}}
