# The OPA peer of scangate's workload admission (/validate/workloads), for benches/admission.rs.
#
#   POST /v1/data/scangate/admission/review  {"input": <AdmissionReview>}
#
# answers {"result": <AdmissionReview with a response>}. The scans and the trust settings are
# data (benches/common/admission_data.rs writes them from the same ImageScans and admission
# config it gives scangate):
#
#   data.scans[namespace][ref] = {"namespace", "name", "phase", "image", "policy", "violations"}
#   data.trusted = [namespace, ...]     scangateNamespace and trustedScanNamespaces
#   data.trustNamespaceScans = bool     trustNamespaceScans
#
# where ref is a normalized `registry/repository@digest` or `registry/repository:tag`, and a
# scan is indexed under both. As at the webhook (DESIGN.md, Trust model points 1 and 3), a scan
# in a trusted namespace decides for every namespace; a scan in the workload's own namespace
# (not trusted) can only deny more. Not modelled, as the bench uses none: exceptions, result
# and tag ages, enforcement modes other than enforce, and ranking several trusted results by
# time (the first trusted namespace with a scan decides).
package scangate.admission

review := {
	"apiVersion": input.apiVersion,
	"kind": input.kind,
	"response": object.union(
		{"uid": input.request.uid, "allowed": allowed, "status": status},
		warnings_field,
	),
}

default allowed := false

allowed if count(denials) == 0

status := {"message": message} if {
	not allowed
} else := {}

warnings_field := {"warnings": warnings} if {
	count(warnings) > 0
} else := {}

message := sprintf(
	"scangate denied this workload: %s. Fix the image (rebuild with the fixed versions and scan it again) or ask an admin for a ScanException (`kubectl explain scanexception`).",
	[concat("; ", denials)],
)

denials := [v.reason | some v in verdicts; v.action == "deny"]

warnings := [v.reason | some v in verdicts; v.action == "warn"]

namespace := input.request.namespace

# --- which containers ------------------------------------------------------------------------

template_kinds := {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController"}

pod_spec(obj) := obj.spec if input.request.kind.kind == "Pod"

pod_spec(obj) := obj.spec.template.spec if input.request.kind.kind in template_kinds

pod_spec(obj) := obj.spec.jobTemplate.spec.template.spec if input.request.kind.kind == "CronJob"

# In pod order: init containers, containers, ephemeral containers.
containers(obj) := [c |
	spec := pod_spec(obj)
	some section in ["initContainers", "containers", "ephemeralContainers"]
	some c in spec[section]
]

# Creates and updates are checked; an update only for the images it brings in.
old_images := {c.image | some c in containers(input.request.oldObject)}

verdicts := [verdict(c.name, image_ref(c.image)) |
	input.request.operation in {"CREATE", "UPDATE"}
	some c in containers(input.request.object)
	not c.image in old_images
]

# --- the decision for one container ----------------------------------------------------------

# The namespaces whose scans are trusted results for this workload.
trusted_namespaces := array.concat(data.trusted, [namespace]) if {
	data.trustNamespaceScans
} else := data.trusted

# The workload namespace's own scans count as namespace scans unless they are trusted.
namespace_scans_count if not namespace in trusted_namespaces

# The trusted verdict, unless the namespace's own scan denies and the trusted one does not.
verdict(container, img) := denial if {
	trusted := trusted_verdict(container, img)
	trusted.action != "deny"
	denial := namespace_denial(container, img)
} else := trusted_verdict(container, img)

trusted_verdict(container, img) := phase_verdict(container, scan, "trusted") if {
	scan := trusted_scan(img)
} else := {"action": "warn", "reason": sprintf(
	"container %q: image %s has no trusted scan (trusted: scans in %s)",
	[container, display(img), concat(", ", trusted_namespaces)],
)}

# A namespace scan in phase Failed or Error: it denies there.
namespace_denial(container, img) := phase_verdict(container, scan, "namespace") if {
	namespace_scans_count
	scan := lookup(namespace, img)
	scan.phase in {"Failed", "Error"}
}

# The scan of the first trusted namespace that has one.
trusted_scan(img) := found[0] if {
	found := [scan | some ns in trusted_namespaces; scan := lookup(ns, img)]
	count(found) > 0
}

# The scan in namespace ns of the digest if the reference pins one, else of the tag.
lookup(ns, img) := scan if {
	img.digest != ""
	scan := data.scans[ns][concat("@", [img.name, img.digest])]
} else := scan if {
	img.tag != ""
	scan := data.scans[ns][concat(":", [img.name, img.tag])]
}

# `origin` is "trusted" or "namespace", as the webhook's messages name the scan.
phase_verdict(_, scan, _) := {"action": "allow"} if scan.phase == "Completed"

phase_verdict(container, scan, origin) := {"action": "warn", "reason": sprintf(
	"container %q: image %s is not scanned yet: %s scan %s/%s is %s",
	[container, scan.image, origin, scan.namespace, scan.name, scan.phase],
)} if scan.phase in {"Pending", "Scanning"}

phase_verdict(container, scan, origin) := {"action": "deny", "reason": sprintf(
	"container %q: image %s has %s scan %s/%s in phase Error; see `kubectl describe imagescan -n %s %s`",
	[container, scan.image, origin, scan.namespace, scan.name, scan.namespace, scan.name],
)} if scan.phase == "Error"

phase_verdict(container, scan, origin) := {"action": "deny", "reason": sprintf(
	"container %q: image %s failed %s scan %s/%s%s%s",
	[container, scan.image, origin, scan.namespace, scan.name, policy_note(scan), cves_note(scan)],
)} if scan.phase == "Failed"

policy_note(scan) := sprintf(" (policy %s/%s)", [scan.namespace, scan.policy]) if {
	scan.policy
} else := ""

# The top five CVEs, and how many more.
cves_note(scan) := sprintf(": %s%s", [
	concat(", ", [describe(v) | some v in array.slice(scan.violations, 0, 5)]),
	more(count(scan.violations) - 5),
]) if {
	count(scan.violations) > 0
} else := ""

more(n) := sprintf(" and %d more", [n]) if {
	n > 0
} else := ""

describe(v) := sprintf("%s (%s) in %s %s, %s", [v.id, v.severity, v.package, v.version, fix(v)])

fix(v) := sprintf("fixed in %s", [v.fixedVersion]) if {
	v.fixedVersion
} else := "no fix yet"

# --- image references ------------------------------------------------------------------------

# Normalized as the kubelet pulls them: `busybox:1.32.1` is docker.io/library/busybox:1.32.1,
# `nginx` is docker.io/library/nginx:latest, `ghcr.io/o/app@sha256:…` keeps its digest.
image_ref(ref) := {"name": repository(name), "tag": default_tag(tag, digest), "digest": digest} if {
	[name_tag, digest] := cut(ref, "@")
	[name, tag] := cut_tag(name_tag)
}

cut(s, sep) := [substring(s, 0, i), substring(s, i + 1, -1)] if {
	i := indexof(s, sep)
	i >= 0
} else := [s, ""]

# A tag follows the last ':' after the last '/' (a ':' before a '/' is a registry port).
cut_tag(s) := [substring(s, 0, i), substring(s, i + 1, -1)] if {
	i := max(indexof_n(s, ":"))
	not contains(substring(s, i + 1, -1), "/")
} else := [s, ""]

default_tag(tag, digest) := "latest" if {
	tag == ""
	digest == ""
} else := tag

# A first component with '.' or ':', or `localhost`, is a registry; otherwise Docker Hub,
# where official images live under library/.
repository(name) := concat("/", [hub(first), official(hub(first), rest)]) if {
	[first, rest] := cut(name, "/")
	rest != ""
	registry_host(first)
} else := concat("/", ["docker.io", official("docker.io", name)])

registry_host(s) if contains(s, ".")

registry_host(s) if contains(s, ":")

registry_host(s) if s == "localhost"

hub("index.docker.io") := "docker.io"

hub(host) := host if host != "index.docker.io"

official(registry, path) := concat("/", ["library", path]) if {
	registry == "docker.io"
	not contains(path, "/")
} else := path

display(img) := concat("", [img.name, tag_part(img.tag), digest_part(img.digest)])

tag_part(tag) := concat(":", ["", tag]) if {
	tag != ""
} else := ""

digest_part(digest) := concat("@", ["", digest]) if {
	digest != ""
} else := ""
