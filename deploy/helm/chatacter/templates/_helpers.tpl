{{/* Names: <release>-chatacter (or the release name when it already says chatacter), then
     -chattr, -vocalizr, -visualizr; short enough for a Service name (63). */}}
{{- define "chatacter.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "chatacter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector of one program's pods; call with (dict "root" $ "program" "chattr"). */}}
{{- define "chatacter.selector" -}}
app.kubernetes.io/name: {{ default .root.Chart.Name .root.Values.nameOverride }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .program }}
{{- end -}}

{{- define "chatacter.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "chatacter.secretName" -}}
{{- default (printf "%s-keys" (include "chatacter.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "chatacter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "chatacter.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* A subchart's full name as its own chart computes it by default. */}}
{{- define "chatacter.subchartName" -}}
{{- if contains .chart .root.Release.Name -}}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .root.Release.Name .chart | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "chatacter.redisUrl" -}}
{{- if .Values.chattr.redisUrl -}}
{{- .Values.chattr.redisUrl -}}
{{- else if .Values.valkey.enabled -}}
{{- printf "redis://%s:6379/0" (include "chatacter.subchartName" (dict "root" . "chart" "valkey")) -}}
{{- end -}}
{{- end -}}

{{- define "chatacter.qdrantUrl" -}}
{{- if .Values.chattr.qdrantUrl -}}
{{- .Values.chattr.qdrantUrl -}}
{{- else if .Values.qdrant.enabled -}}
{{- printf "http://%s:6333" (include "chatacter.subchartName" (dict "root" . "chart" "qdrant")) -}}
{{- end -}}
{{- end -}}

{{- define "chatacter.s3Endpoint" -}}
{{- if .Values.mediaStore.endpoint -}}
{{- .Values.mediaStore.endpoint -}}
{{- else if .Values.seaweedfs.enabled -}}
{{- printf "http://%s-s3:8333" (include "chatacter.subchartName" (dict "root" . "chart" "seaweedfs")) -}}
{{- end -}}
{{- end -}}

{{/* In-cluster address of a media service: this release's, or the one given to chattr. */}}
{{- define "chatacter.serviceUrl" -}}
{{- $values := index .root.Values .program -}}
{{- if $values.enabled -}}
{{- printf "http://%s-%s:%v" (include "chatacter.fullname" .root) .program $values.service.port -}}
{{- else -}}
{{- index .root.Values.chattr (printf "%sUrl" .program) -}}
{{- end -}}
{{- end -}}

{{- define "chatacter.publicUrl" -}}
{{- if .Values.chattr.publicUrl -}}
{{- .Values.chattr.publicUrl -}}
{{- else if and (ne .Values.edge.type "none") .Values.edge.host -}}
{{- printf "%s://%s" (ternary "https" "http" (not (empty .Values.edge.tls.secretName))) .Values.edge.host -}}
{{- end -}}
{{- end -}}

{{/* The highest replica count a program can reach. */}}
{{- define "chatacter.maxReplicas" -}}
{{- if .values.autoscaling.enabled -}}
{{- .values.autoscaling.maxReplicas -}}
{{- else -}}
{{- .values.replicas -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by the three programs: the media store and its credentials. */}}
{{- define "chatacter.storeEnv" -}}
{{- $root := .root -}}
{{- if $root.Values.mediaStore.bucket }}
- name: {{ upper .program }}_MEDIA_STORE
  value: {{ printf "s3://%s" (join "/" (compact (list $root.Values.mediaStore.bucket (trimAll "/" $root.Values.mediaStore.prefix) .program))) | quote }}
{{- with (include "chatacter.s3Endpoint" $root) }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with $root.Values.mediaStore.region }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- include "chatacter.secretEnv" (dict "root" $root "name" "AWS_ACCESS_KEY_ID" "key" "aws-access-key-id") }}
{{- include "chatacter.secretEnv" (dict "root" $root "name" "AWS_SECRET_ACCESS_KEY" "key" "aws-secret-access-key") }}
{{- end }}
{{- end -}}

{{/* One variable from the keys Secret; optional, so a key left out means the setting is unset. */}}
{{- define "chatacter.secretEnv" }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "chatacter.secretName" .root }}
      key: {{ .key }}
      optional: true
{{- end -}}

{{/* Settings given as a map, in a stable order. */}}
{{- define "chatacter.extraEnv" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{- define "chatacter.probes" -}}
startupProbe:
  httpGet: {path: /livez, port: http}
  periodSeconds: 5
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /livez, port: http}
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}

{{/* Seconds as a Gateway API duration (at most 5 digits per unit): 86400 -> 24h0m0s. */}}
{{- define "chatacter.duration" -}}
{{- $s := int . -}}
{{- printf "%dh%dm%ds" (div $s 3600) (mod (div $s 60) 60) (mod $s 60) -}}
{{- end -}}
