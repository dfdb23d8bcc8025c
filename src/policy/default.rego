# scangate's default ScanPolicy (Rego v1).
#
# `input` is scangate's normalized report:
#   {artifact, scanner, vulnerabilities: [{id, severity, package: {name, version, type, purl},
#    fixedVersions, urls}], exceptions: [{images, cves, reason, expires}]}
# `deny` holds one message per vulnerability that violates the policy; an empty `deny`
# means the artifact is compliant.
package main

import rego.v1

# Knobs: edit these two lines to make the policy yours.
# Severities that violate the policy, among "critical", "high", "medium", "low", "unknown".
notAllowedSeverities := ["critical", "high"]

# CVE ids that never violate the policy, e.g. ["CVE-2021-44228"].
ignoreCves := []

deny contains msg if {
	some vuln in input.vulnerabilities
	lower(vuln.severity) in notAllowedSeverities
	not vuln.id in ignoreCves
	not excepted(vuln.id)
	msg := sprintf("%s (%s) in %s %s%s", [
		vuln.id,
		lower(vuln.severity),
		vuln.package.name,
		vuln.package.version,
		fixed_in(vuln),
	])
}

# input.exceptions holds only the ScanExceptions that are active and match this artifact:
# scangate has already dropped expired ones and those for other images.
# An exception without CVEs covers every CVE of the image.
excepted(_) if {
	some exception in object.get(input, "exceptions", [])
	count(object.get(exception, "cves", [])) == 0
}

# Otherwise it covers the CVEs it lists.
excepted(id) if {
	some exception in object.get(input, "exceptions", [])
	id in object.get(exception, "cves", [])
}

fixed_in(vuln) := sprintf(", fixed in %s", [concat(", ", vuln.fixedVersions)]) if {
	count(object.get(vuln, "fixedVersions", [])) > 0
} else := ""
