#!/usr/bin/env python3
"""Cross-checks the C++ property-test samples with Python `jsonschema` (pinned 4.26.0, format checker on).

Produce samples:  QNEXT_CONSTRAIN_SAMPLES_OUT=/tmp/samples.jsonl build/tests/constrain/test_constrain_property
Validate:         python3 tests/reference/constrain_validate.py /tmp/samples.jsonl
Writes tests/data/constrain/python_validation.json: per schema {samples, parsed, valid, first_error}."""
import importlib.metadata, json, pathlib, sys

import jsonschema


def openapi_nullable(s):
    """`nullable: true` is OpenAPI, not JSON Schema; the engine honours it as type + "null". Rewrite it so that
    standard jsonschema checks the same meaning."""
    if isinstance(s, dict):
        s = {k: openapi_nullable(v) for k, v in s.items()}
        if s.pop("nullable", False) is True and isinstance(s.get("type"), str):
            s["type"] = [s["type"], "null"]
        return s
    if isinstance(s, list):
        return [openapi_nullable(x) for x in s]
    return s


root = pathlib.Path(__file__).resolve().parents[1]
schemas = {e["name"]: openapi_nullable(e["schema"]) for e in json.loads((root / "data/constrain/schemas.json").read_text())}
stats = {}
for line in open(sys.argv[1], encoding="utf-8"):
    rec = json.loads(line)
    st = stats.setdefault(rec["schema"], {"samples": 0, "parsed": 0, "valid": 0, "first_error": None})
    st["samples"] += 1
    try:
        inst = json.loads(rec["text"])
    except json.JSONDecodeError as e:
        st["first_error"] = st["first_error"] or f"not JSON: {e}"
        continue
    st["parsed"] += 1
    v = jsonschema.Draft202012Validator(schemas[rec["schema"]], format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errs = list(v.iter_errors(inst))
    if errs:
        st["first_error"] = st["first_error"] or f"{errs[0].message} at {list(errs[0].absolute_path)}"
    else:
        st["valid"] += 1
total = sum(s["samples"] for s in stats.values())
valid = sum(s["valid"] for s in stats.values())
summary = {"jsonschema": importlib.metadata.version("jsonschema"),
           "schemas": len(stats), "samples": total, "valid": valid, "per_schema": stats}
(root / "data/constrain/python_validation.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
print(f"{valid}/{total} samples valid over {len(stats)} schemas")
sys.exit(0 if valid == total else 1)
