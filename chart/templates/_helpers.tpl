{{- define "shoal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shoal.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "shoal.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "shoal.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "shoal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shoal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "shoal.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "shoal.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "shoal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "shoal.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "shoal.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* containerd's config file: Talos keeps the CRI config under /etc/cri. */}}
{{- define "shoal.containerdConfigFile" -}}
{{- if .Values.shoal.containerdConfigFile }}
{{- .Values.shoal.containerdConfigFile }}
{{- else if hasPrefix "/etc/cri/" .Values.shoal.containerdRegistryConfigPath }}
{{- "/etc/cri/containerd.toml" }}
{{- else }}
{{- "/etc/containerd/config.toml" }}
{{- end }}
{{- end }}

{{- define "shoal.bootstrapService" -}}
{{- printf "%s-bootstrap" (include "shoal.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shoal.bootstrapDomain" -}}
{{- printf "%s.%s.svc.%s." (include "shoal.bootstrapService" .) .Release.Namespace .Values.clusterDomain }}
{{- end }}

{{/* Where the node's containerd finds its own shoal: hostPort first, then the node-local NodePort. */}}
{{- define "shoal.mirrorTargets" -}}
{{- $targets := list (printf "http://$(NODE_IP):%d" (int .Values.service.registry.hostPort)) (printf "http://$(NODE_IP):%d" (int .Values.service.registry.nodePort)) }}
{{- concat $targets .Values.shoal.additionalMirrorTargets | join "," }}
{{- end }}

{{/* The registry pods (the main DaemonSet); the cleanup pods carry component: cleanup instead. */}}
{{- define "shoal.registrySelectorLabels" -}}
{{ include "shoal.selectorLabels" . }}
app.kubernetes.io/component: registry
{{- end }}

{{/* The Secret holding the cluster key, or "" for an open swarm. */}}
{{- define "shoal.clusterKeySecret" -}}
{{- if .Values.shoal.clusterKey.existingSecret -}}
{{ .Values.shoal.clusterKey.existingSecret }}
{{- else if .Values.shoal.clusterKey.create -}}
{{ include "shoal.fullname" . }}-cluster-key
{{- end -}}
{{- end }}
