#!/usr/bin/python3
"""Checks cloud-config documents with cloud-init itself.

`cloud-init schema` rejects bad YAML, wrong types and unknown nested keys, but accepts unknown
top-level keys (a `write_file:` typo passes), so those are checked against cloud-init's schema too.
Usage: check-cloud-config.py FILE...   Exit 1 when any document fails, naming the problem.
"""
import subprocess
import sys

import yaml
from cloudinit.config.schema import get_schema


def known_top_level_keys():
    schema = get_schema()
    keys = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        keys |= set(part.get("properties", {}))
        ref = part.get("$ref", "")
        if ref.startswith("#/$defs/"):
            keys |= set(schema["$defs"][ref.split("/")[-1]].get("properties", {}))
    return keys


def main(paths):
    known = known_top_level_keys()
    failed = False
    for path in paths:
        result = subprocess.run(["cloud-init", "schema", "--config-file", path], capture_output=True, text=True)
        if result.returncode != 0:
            failed = True
            print(f"{path}: cloud-init schema failed:\n{result.stdout}{result.stderr}".rstrip())
            continue
        with open(path) as handle:
            document = yaml.safe_load(handle)
        unknown = sorted(set(document) - known)
        if unknown:
            failed = True
            print(f"{path}: unknown top-level keys: {', '.join(unknown)}")
        else:
            print(f"{path}: valid")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
