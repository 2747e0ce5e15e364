#!/usr/bin/env python3
"""Print the transitive import closure of .proto files, dependencies first.

Usage: proto_closure.py INCLUDE_DIR[;INCLUDE_DIR...] ROOT.proto [ROOT.proto ...]

Imports of google/protobuf/* are provided by the system protobuf and are left
out. An import that cannot be found in any include dir is an error, so a bad
pin of the API package fails at configure time instead of deep inside protoc.
"""
import os
import re
import sys

IMPORT_RE = re.compile(r'^import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.M)


def main() -> int:
    include_dirs = [d for d in sys.argv[1].split(";") if d]
    roots = sys.argv[2:]
    seen = set()
    order = []

    def locate(path):
        for d in include_dirs:
            full = os.path.join(d, path)
            if os.path.exists(full):
                return full
        return None

    def visit(path, importer):
        if path in seen or path.startswith("google/protobuf/"):
            return
        seen.add(path)
        full = locate(path)
        if full is None:
            sys.exit(f"proto_closure: {path} (imported by {importer}) not found")
        with open(full, encoding="utf-8") as f:
            text = f.read()
        for m in IMPORT_RE.finditer(text):
            visit(m.group(1), path)
        order.append(path)

    for root in roots:
        visit(root, "<root>")
    print(";".join(order), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
