"""Writes the openAPIV3Schema of each version a KServe CRD serves as JSON, unchanged: what
.ci/deploy/kserve-validate.sh validates config/kserve against (see README.md here).

    git -C KSERVE show v0.20.0:config/crd/full/serving.kserve.io_inferenceservices.yaml >crd.yaml
    "$TOOLS/bin/python" .ci/deploy/kserve-crds/extract.py crd.yaml .ci/deploy/kserve-crds

The file is named as kubernetes-validate names its schemas, KIND-GROUP-VERSION.json
(inferenceservice-serving.kserve.io-v1beta1.json), so that the validator finds a manifest's
schema from its apiVersion and kind, and a misspelt one finds none. One key per line, so
that the diff of an update says what KServe changed. Why only the schema: the CRDs are YAML
of 0.2 and 2 MB, most of it indentation; the rest of a CRD (names, printer columns, the
conversion webhook) validates nothing.
"""

import json
import os
import sys

import yaml


def main():
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} CRD.yaml OUT_DIR")
    crd_path, out_dir = sys.argv[1:]
    with open(crd_path, encoding="utf-8") as f:
        crd = yaml.safe_load(f)
    if crd.get("kind") != "CustomResourceDefinition":
        sys.exit(f"extract.py: {crd_path}: not a CustomResourceDefinition (kind {crd.get('kind')})")
    spec = crd["spec"]
    kind = spec["names"]["kind"]
    for version in spec["versions"]:
        if not version.get("served"):
            continue
        name = f"{kind.lower()}-{spec['group']}-{version['name']}.json"
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            json.dump(version["schema"]["openAPIV3Schema"], f, indent=0)
            f.write("\n")
        print(f"{name}: {kind} {spec['group']}/{version['name']}")


if __name__ == "__main__":
    main()
