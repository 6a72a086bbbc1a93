#!/usr/bin/env python3
"""Writes the SPDX 2.3 SBOM (JSON) of one architecture's release artefacts.

Usage: sbom.py TARGET VERSION ARCH DIST > DIST/strict-groups-VERSION-ARCH.spdx.json

It names every crate that the shipped binary is built from (the normal and
build dependencies of strict-groups for TARGET, proc-macros included: the
set `cargo auditable` embeds in the binary), each with its version, declared licence,
crates.io location, package URL and the SHA-256 that Cargo.lock pins; the
binary, .deb, .rpm and installer image with their own SHA-256 (the image also
holds Debian's busybox-static); and what contains and depends on what.
Deterministic: the creation time is SOURCE_DATE_EPOCH, the order sorted.
SPDX rather than CycloneDX: Kubernetes publishes its SBOMs in SPDX, so the
tools a platform team already points at those (trivy, grype, bom) read ours.
"""

import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib

target, version, arch, dist = sys.argv[1:5]
top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

metadata = json.loads(
    subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--offline",
         "--filter-platform", target],
        cwd=top, check=True, capture_output=True,
    ).stdout
)
with open(os.path.join(top, "Cargo.lock"), "rb") as f:
    lock = tomllib.load(f)
checksums = {(p["name"], p["version"]): p.get("checksum") for p in lock["package"]}
packages = {p["id"]: p for p in metadata["packages"]}
nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
root = metadata["resolve"]["root"]


def deps(node_id, kind):
    """The crates `node_id` depends on as `kind` (None: linked; "build": its
    build script's)."""
    return sorted(
        d["pkg"] for d in nodes[node_id]["deps"]
        if any(k["kind"] == kind for k in d["dep_kinds"])
    )


# Everything the binary is built from: normal and build dependencies, not
# dev ones (the set `cargo auditable` embeds in the binary).
closure, todo = set(), [root]
while todo:
    node = todo.pop()
    for dep in deps(node, None) + deps(node, "build"):
        if dep not in closure:
            closure.add(dep)
            todo.append(dep)


def spdx_id(*parts):
    return "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]", "-", "-".join(parts))


def licence(expression):
    """A crate's licence as an SPDX expression (old crates write "MIT/Apache-2.0")."""
    if not expression:
        return "NOASSERTION"
    return " OR ".join(part.strip() for part in expression.split("/"))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def package(id_, name, version_, **extra):
    return {
        "SPDXID": id_, "name": name, "versionInfo": version_,
        "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION", "copyrightText": "NOASSERTION", **extra,
    }


ours = spdx_id("Package", "strict-groups")
binary_name = f"strict-groups-{version}-{arch}"
binary_sha = sha256(os.path.join(dist, binary_name))
doc_packages = [package(
    ours, "strict-groups", version,
    licenseDeclared=licence(packages[root]["license"]),
    primaryPackagePurpose="APPLICATION",
    packageFileName=binary_name,
    checksums=[{"algorithm": "SHA256", "checksumValue": binary_sha}],
)]
relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                  "relatedSpdxElement": ours}]
crate_ids = {}
for pkg_id in sorted(closure, key=lambda i: (packages[i]["name"], packages[i]["version"])):
    p = packages[pkg_id]
    crate_ids[pkg_id] = spdx_id("Crate", p["name"], p["version"])
    checksum = checksums.get((p["name"], p["version"]))
    if not checksum or not (p.get("source") or "").startswith("registry+"):
        sys.exit(f"sbom: {p['name']} {p['version']} is not a crates.io crate pinned by Cargo.lock")
    doc_packages.append(package(
        crate_ids[pkg_id], p["name"], p["version"],
        downloadLocation=f"https://crates.io/api/v1/crates/{p['name']}/{p['version']}/download",
        licenseDeclared=licence(p["license"]),
        primaryPackagePurpose="LIBRARY",
        checksums=[{"algorithm": "SHA256", "checksumValue": checksum}],
        externalRefs=[{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                       "referenceLocator": f"pkg:cargo/{p['name']}@{p['version']}"}],
    ))
for pkg_id in [root] + sorted(closure):
    this = ours if pkg_id == root else crate_ids[pkg_id]
    for dep in deps(pkg_id, None):
        relationships.append({"spdxElementId": this, "relationshipType": "DEPENDS_ON",
                              "relatedSpdxElement": crate_ids[dep]})
    for dep in deps(pkg_id, "build"):
        relationships.append({"spdxElementId": crate_ids[dep],
                              "relationshipType": "BUILD_DEPENDENCY_OF", "relatedSpdxElement": this})

# The artefacts that hold the binary (and, in the image, busybox).
deb_arch, rpm_arch = {"x86_64": ("amd64", "x86_64"), "aarch64": ("arm64", "aarch64")}[arch]
artefacts = [
    (f"strict-groups_{version}-1_{deb_arch}.deb", "deb"),
    (f"strict-groups-{version}-1.{rpm_arch}.rpm", "rpm"),
    (f"strict-groups-installer-{version}-{arch}.tar", "image"),
]
for file_name, kind in artefacts:
    path = os.path.join(dist, file_name)
    if not os.path.exists(path):
        continue
    art = spdx_id("Artefact", kind)
    doc_packages.append(package(
        art, file_name, version, packageFileName=file_name,
        primaryPackagePurpose="CONTAINER" if kind == "image" else "INSTALL",
        checksums=[{"algorithm": "SHA256", "checksumValue": sha256(path)}],
    ))
    relationships.append({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                          "relatedSpdxElement": art})
    relationships.append({"spdxElementId": art, "relationshipType": "CONTAINS",
                          "relatedSpdxElement": ours})
    if kind == "image":
        bb_version = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "busybox-static"],
            capture_output=True, text=True).stdout or "NOASSERTION"
        bb = spdx_id("Deb", "busybox-static")
        doc_packages.append(package(
            bb, "busybox-static", bb_version, licenseDeclared="GPL-2.0-only",
            primaryPackagePurpose="APPLICATION",
            externalRefs=[{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                           "referenceLocator": f"pkg:deb/debian/busybox-static@{bb_version}?arch={deb_arch}"}],
        ))
        relationships.append({"spdxElementId": art, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": bb})

epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
created = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
document = {
    "spdxVersion": "SPDX-2.3",
    "dataLicense": "CC0-1.0",
    "SPDXID": "SPDXRef-DOCUMENT",
    "name": binary_name,
    "documentNamespace": f"https://strict-groups.io/spdx/{binary_name}-{binary_sha}",
    "creationInfo": {"created": created, "creators": ["Tool: strict-groups packaging/sbom.py"]},
    "packages": doc_packages,
    "relationships": relationships,
}
json.dump(document, sys.stdout, indent=1, sort_keys=True)
print()
