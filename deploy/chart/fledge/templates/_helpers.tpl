{{/*
The chart's name, shortened to a DNS label: `fledge`, or nameOverride.
*/}}
{{- define "fledge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The release's objects are named after it, as in Flagger's chart: fullnameOverride, else the
release name when it contains the chart's name (release `fledge` gives `fledge`), else
`<release>-<name>`. Cluster-scoped objects (ClusterRole, ClusterRoleBinding) carry it, so two
releases need two names.
*/}}
{{- define "fledge.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The operator's Deployment, Service and PodMonitor, and its pods' `app.kubernetes.io/name`:
`fledge-operator`.
*/}}
{{- define "fledge.operatorName" -}}
{{- printf "%s-operator" (include "fledge.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The labels every object carries (as deploy/kustomize/base puts them). Helm adds
`app.kubernetes.io/managed-by: Helm` and its release annotations itself when it installs.
*/}}
{{- define "fledge.labels" -}}
app.kubernetes.io/part-of: fledge
{{- end -}}

{{/*
The pods' selector: one name per namespace is enough, since the operator's leader-election
Lease (`fledge-leader-election`) is one per namespace as well.
*/}}
{{- define "fledge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fledge.operatorName" . }}
{{- end -}}

{{- define "fledge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "fledge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Where the leader-election Lease lives: in the watched namespace when `namespace` is set (as in
Flagger), else in the release's namespace (-leader-election-namespace).
*/}}
{{- define "fledge.leaseNamespace" -}}
{{- default .Release.Namespace .Values.namespace -}}
{{- end -}}

{{/*
The `rules` of the object of a kind in one of the files the kustomize base installs
(files/*.yaml link to deploy/kustomize/base), so that the chart and the base grant the same
rights and cannot drift apart. Called with (list "files/rbac.yaml" "ClusterRole" $).
*/}}
{{- define "fledge.rulesOf" -}}
{{- $file := index . 0 -}}
{{- $kind := index . 1 -}}
{{- $root := index . 2 -}}
{{- $rules := list -}}
{{- range $document := regexSplit "(?m)^---[ \t]*$" ($root.Files.Get $file) -1 -}}
{{- $object := fromYaml $document -}}
{{- if eq (toString $object.kind) $kind -}}
{{- $rules = $object.rules -}}
{{- end -}}
{{- end -}}
{{- if not $rules -}}
{{- fail (printf "%s holds no %s with rules: it must link to deploy/kustomize/base/%s" $file $kind (base $file)) -}}
{{- end -}}
{{- toYaml $rules -}}
{{- end -}}

{{/*
The webhook URLs (credentials: an incoming webhook accepts whoever knows it) the chart keeps
in its Secret, by the environment variable Flagger and Fledge read them from. Empty when none
is set.
*/}}
{{- define "fledge.webhooks" -}}
{{- $slack := .Values.slack | default dict -}}
{{- $msteams := .Values.msteams | default dict -}}
{{- $urls := dict -}}
{{- with $slack.url }}{{ $_ := set $urls "SLACK_URL" (toString .) }}{{ end -}}
{{- with ($slack.proxyUrl | default $slack.proxy) }}{{ $_ := set $urls "SLACK_PROXY_URL" (toString .) }}{{ end -}}
{{- with $msteams.url }}{{ $_ := set $urls "MSTEAMS_URL" (toString .) }}{{ end -}}
{{- with $msteams.proxyUrl }}{{ $_ := set $urls "MSTEAMS_PROXY_URL" (toString .) }}{{ end -}}
{{- with .Values.eventWebhook }}{{ $_ := set $urls "EVENT_WEBHOOK_URL" (toString .) }}{{ end -}}
{{- if $urls }}{{ toYaml $urls }}{{ end -}}
{{- end -}}

{{/*
Fails on values Fledge cannot honour, naming the value and what to do instead; called once,
from the Deployment.
*/}}
{{- define "fledge.validate" -}}
{{- $image := .Values.image | default dict -}}
{{- $_ := required "image.repository is required: the operator's image, e.g. ghcr.io/fledge-rs/fledge-operator" $image.repository -}}
{{- $provider := toString (.Values.meshProvider | default "") -}}
{{- if and $provider (not (regexMatch "^(istio|linkerd|osm|kubernetes|gatewayapi:v1|gatewayapi:v1beta1|smi:v1alpha[123](:[a-z0-9-]+)?)$" $provider)) -}}
{{- fail (printf "meshProvider=%s is not a provider Fledge routes; use one of istio, linkerd, osm, kubernetes, gatewayapi:v1, gatewayapi:v1beta1, smi:v1alpha1, smi:v1alpha2, smi:v1alpha3 (or leave it empty for istio)" $provider) -}}
{{- end -}}
{{- $level := toString .Values.logLevel -}}
{{- if not (has $level (list "debug" "info" "warning" "warn" "error")) -}}
{{- fail (printf "logLevel=%s: use debug, info, warning or error" $level) -}}
{{- end -}}
{{- $election := .Values.leaderElection | default dict -}}
{{- if and (not $election.enabled) (gt (int (default 1 $election.replicaCount)) 1) -}}
{{- fail (printf "leaderElection.replicaCount=%v needs leaderElection.enabled=true: without a Lease every replica would act on every Canary" $election.replicaCount) -}}
{{- end -}}
{{- if (.Values.prometheus | default dict).install -}}
{{- fail "prometheus.install is not supported by Fledge's chart: apply deploy/kustomize/prometheus (or use your own Prometheus) and set metricsServer" -}}
{{- end -}}
{{- if (.Values.serviceMonitor | default dict).enabled -}}
{{- fail "serviceMonitor.enabled is not supported by Fledge's chart: use podMonitor.enabled=true (the Service fledge-operator also exposes /metrics)" -}}
{{- end -}}
{{- if (.Values.crd | default dict).create -}}
{{- fail "crd.create is not supported by Fledge's chart: the CRDs are in the chart's crds/ folder, which Helm installs first (upgrade them with kubectl apply --server-side -k deploy/crds)" -}}
{{- end -}}
{{- if ((.Values.controlplane | default dict).kubeconfig | default dict).secretName -}}
{{- fail "controlplane.kubeconfig.secretName is not supported: Fledge writes routing objects to the cluster it runs in" -}}
{{- end -}}
{{- if (.Values.rbac | default dict).pspEnabled -}}
{{- fail "rbac.pspEnabled is not supported: PodSecurityPolicy is gone from Kubernetes; the pod runs as non-root with a read-only root file system" -}}
{{- end -}}
{{- end -}}
