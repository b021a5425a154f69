"""Write `requests.json`: the request bodies of Meta's OpenAPI document for the Cloud API, as
JSON, with the component schemas they use, so the fake's validator needs neither the 1 MB
YAML nor a YAML parser. Data only: nothing is changed here (the validator applies its
documented corrections, channel.fakegraph.openapi).

    .venv/bin/python channel/fakegraph/spec/extract.py path/to/business-messaging-api_v23.0.yaml

Source: the public repository facebook/openapi, file business-messaging-api_v23.0.yaml, commit
ecba623b4aba6ae770185b074ed77ed5acef22f7 (2025-11-21), MIT licence (LICENSE beside this file).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SOURCE = {
    "repository": "https://github.com/facebook/openapi",
    "file": "business-messaging-api_v23.0.yaml",
    "commit": "ecba623b4aba6ae770185b074ed77ed5acef22f7",
    "licence": "MIT (LICENSE)",
}
_REF = "#/components/schemas/"


def _refs(node, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF):
            found.add(ref[len(_REF) :])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def extract(document: dict) -> dict:
    operations: dict[str, dict] = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            content = (body or {}).get("content", {}).get("application/json")
            if not content or "schema" not in content:
                continue
            examples = {name: e["value"] for name, e in content.get("examples", {}).items()}
            if "example" in content:
                examples["example"] = content["example"]
            operations[f"{method.upper()} {path}"] = {
                "schema": content["schema"],
                "examples": examples,
            }
    schemas = document["components"]["schemas"]
    wanted: set[str] = set()
    _refs(operations, wanted)
    todo = list(wanted)
    while todo:  # the schemas those schemas use, transitively
        found: set[str] = set()
        _refs(schemas[todo.pop()], found)
        todo += sorted(found - wanted)
        wanted |= found
    return {
        "source": SOURCE,
        "operations": operations,
        "schemas": {name: schemas[name] for name in sorted(wanted)},
    }


def main(path: str) -> None:
    with open(path, encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    out = HERE / "requests.json"
    out.write_text(json.dumps(extract(document), indent=1, sort_keys=True) + "\n")
    sys.stdout.write(f"wrote {out}\n")


if __name__ == "__main__":
    main(sys.argv[1])
