#!/usr/bin/env python3
"""Writes tests/data/constrain/schemas.json (the property-test / benchmark schema set: hand-written
feature schemas + real-world tool argument schemas) and tests/data/constrain/tools20.json (a 20-tool
set for the compile-time benchmark). Pure data; no dependencies."""
import json, pathlib

S = lambda **kw: dict(kw)
obj = lambda props, req=None, **kw: {"type": "object", "properties": props, **({"required": req} if req is not None else {}), **kw}
string = {"type": "string"}
integer = {"type": "integer"}
number = {"type": "number"}
boolean = {"type": "boolean"}

schemas = {
  # --- hand-written, one feature each ---
  "string": string,
  "string_bounded": {"type": "string", "minLength": 2, "maxLength": 12},
  "integer": integer,
  "integer_range": {"type": "integer", "minimum": -40, "maximum": 125},
  "integer_exclusive": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 1000},
  "number": number,
  "number_range": {"type": "number", "minimum": 0, "maximum": 1},
  "boolean": boolean,
  "null": {"type": "null"},
  "enum_mixed": {"enum": ["red", "green", 3, None, True]},
  "const": {"const": {"version": 2}},
  "type_union": {"type": ["string", "integer", "null"]},
  "nullable": {"type": "string", "nullable": True},
  "object_required": obj({"a": integer, "b": string}, ["a", "b"]),
  "object_optional": obj({"a": integer, "b": string, "c": boolean}, []),
  "object_mixed_required": obj({"x": number, "y": number, "label": string, "z": number}, ["y", "label"]),
  "additional_schema": obj({"id": integer}, ["id"], additionalProperties={"type": "number"}),
  "additional_true": {"type": "object", "additionalProperties": True},
  "additional_only": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 8}},
  "anyOf_scalars": {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "integer", "minimum": 0}]},
  "oneOf_tagged": {"oneOf": [obj({"kind": {"const": "circle"}, "r": number}, ["kind", "r"]),
                             obj({"kind": {"const": "rect"}, "w": number, "h": number}, ["kind", "w", "h"])]},
  "allOf_objects": {"allOf": [obj({"a": integer}, ["a"]), obj({"b": {"type": "string", "format": "date"}}, ["b"])]},
  "array_items": {"type": "array", "items": integer},
  "array_bounds": {"type": "array", "items": string, "minItems": 2, "maxItems": 4},
  "array_of_objects": {"type": "array", "items": obj({"name": string, "qty": {"type": "integer", "minimum": 1}}, ["name", "qty"]), "minItems": 1},
  "prefix_items": {"type": "array", "prefixItems": [string, integer, boolean], "items": False},
  "prefix_then_items": {"type": "array", "prefixItems": [{"const": "head"}], "items": number, "maxItems": 5},
  "pattern_code": {"type": "string", "pattern": "^[A-Z]{3}-\\d{4}$"},
  "pattern_search": {"type": "string", "pattern": "foo|bar"},
  "pattern_unicode": {"type": "string", "pattern": "^[^\\x00-\\x7F]{1,5}$"},
  "format_date": {"type": "string", "format": "date"},
  "format_time": {"type": "string", "format": "time"},
  "format_datetime": {"type": "string", "format": "date-time"},
  "format_uuid": {"type": "string", "format": "uuid"},
  "format_email": {"type": "string", "format": "email"},
  "format_uri": {"type": "string", "format": "uri"},
  "format_ipv4": {"type": "string", "format": "ipv4"},
  "ref_defs": {"$defs": {"pt": obj({"x": number, "y": number}, ["x", "y"])}, "type": "object",
               "properties": {"from": {"$ref": "#/$defs/pt"}, "to": {"$ref": "#/$defs/pt"}}, "required": ["from", "to"]},
  "recursive_tree": {"$defs": {"node": obj({"value": integer, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 3}}, ["value"])},
                     "$ref": "#/$defs/node"},
  "recursive_linked_list": obj({"v": string, "next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}}, ["v", "next"]),
  "recursive_json_value": {"$defs": {"v": {"anyOf": [string, number, boolean, {"type": "null"},
                           {"type": "array", "items": {"$ref": "#/$defs/v"}, "maxItems": 3},
                           {"type": "object", "additionalProperties": {"$ref": "#/$defs/v"}}]}}, "$ref": "#/$defs/v"},
  "nested_objects": obj({"user": obj({"name": string, "address": obj({"street": string, "zip": {"type": "string", "pattern": "^\\d{5}$"}}, ["zip"])}, ["name", "address"])}, ["user"]),
  "unicode_enum": {"enum": ["café", "naïve", "日本語", "emoji 😀", "quote \" and \\ backslash"]},
  "annotations_ignored": {"type": "integer", "title": "T", "description": "D", "default": 3, "examples": [1, 2]},
  # --- real-world tool argument schemas (OpenAI / MCP style) ---
  "tool_get_weather": obj({"location": {"type": "string", "description": "City and country"},
                           "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, ["location"], additionalProperties=False),
  "tool_web_search": obj({"query": string, "num_results": {"type": "integer", "minimum": 1, "maximum": 20},
                          "site": {"type": ["string", "null"]}, "recency_days": integer}, ["query"]),
  "tool_read_file": obj({"path": string, "offset": {"type": "integer", "minimum": 0}, "limit": {"type": "integer", "minimum": 1, "maximum": 2000}}, ["path"], additionalProperties=False),
  "tool_write_file": obj({"path": string, "content": string, "mode": {"enum": ["overwrite", "append"]}}, ["path", "content"]),
  "tool_edit_file": obj({"path": string, "edits": {"type": "array", "minItems": 1, "items": obj({"old_text": string, "new_text": string}, ["old_text", "new_text"], additionalProperties=False)}}, ["path", "edits"]),
  "tool_shell": obj({"command": string, "timeout_s": {"type": "integer", "minimum": 1, "maximum": 600}, "workdir": string}, ["command"]),
  "tool_python": obj({"code": string}, ["code"], additionalProperties=False),
  "tool_calendar_event": obj({"title": string, "start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"},
                              "attendees": {"type": "array", "items": {"type": "string", "format": "email"}, "maxItems": 10},
                              "location": {"type": ["string", "null"]}, "all_day": boolean}, ["title", "start"]),
  "tool_send_email": obj({"to": {"type": "array", "items": {"type": "string", "format": "email"}, "minItems": 1, "maxItems": 5},
                          "subject": {"type": "string", "maxLength": 120}, "body": string, "cc": {"type": "array", "items": {"type": "string", "format": "email"}}}, ["to", "subject", "body"]),
  "tool_create_issue": obj({"owner": string, "repo": string, "title": string, "body": string,
                            "labels": {"type": "array", "items": string}, "assignees": {"type": "array", "items": string, "maxItems": 10},
                            "milestone": {"type": ["integer", "null"]}}, ["owner", "repo", "title"]),
  "tool_sql_query": obj({"sql": string, "params": {"type": "array", "items": {"type": ["string", "number", "boolean", "null"]}},
                         "max_rows": {"type": "integer", "minimum": 1, "maximum": 10000}}, ["sql"]),
  "tool_http_request": obj({"method": {"enum": ["GET", "POST", "PUT", "DELETE", "PATCH"]}, "url": {"type": "string", "format": "uri"},
                            "headers": {"type": "object", "additionalProperties": string}, "body": {"type": ["string", "null"]},
                            "timeout_ms": {"type": "integer", "minimum": 100, "maximum": 60000}}, ["method", "url"]),
  "tool_book_flight": obj({"origin": {"type": "string", "pattern": "^[A-Z]{3}$"}, "destination": {"type": "string", "pattern": "^[A-Z]{3}$"},
                           "date": {"type": "string", "format": "date"}, "passengers": {"type": "array", "minItems": 1, "maxItems": 6,
                           "items": obj({"first_name": string, "last_name": string, "age": {"type": "integer", "minimum": 0, "maximum": 120}}, ["first_name", "last_name"])},
                           "cabin": {"enum": ["economy", "premium", "business", "first"]}}, ["origin", "destination", "date", "passengers"]),
  "tool_create_order": {"$defs": {"money": obj({"amount": {"type": "number", "minimum": 0}, "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}}, ["amount", "currency"])},
                        **obj({"customer_id": {"type": "string", "format": "uuid"}, "items": {"type": "array", "minItems": 1,
                              "items": obj({"sku": string, "quantity": {"type": "integer", "minimum": 1}, "price": {"$ref": "#/$defs/money"}}, ["sku", "quantity"])},
                              "shipping": {"oneOf": [obj({"method": {"const": "pickup"}, "store_id": integer}, ["method", "store_id"]),
                                                     obj({"method": {"const": "delivery"}, "address": obj({"line1": string, "city": string, "postcode": string}, ["line1", "city"])}, ["method", "address"])]},
                              "notes": {"type": "string", "maxLength": 200}}, ["customer_id", "items", "shipping"])},
  "tool_update_settings": obj({"settings": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
                               "dry_run": boolean}, ["settings"]),
  "tool_search_products": obj({"query": string, "filters": obj({"min_price": {"type": "number", "minimum": 0}, "max_price": {"type": "number", "minimum": 0},
                               "categories": {"type": "array", "items": {"enum": ["books", "electronics", "toys", "garden"]}, "maxItems": 4},
                               "in_stock": boolean}), "sort": {"enum": ["relevance", "price_asc", "price_desc", "newest"]},
                               "page": {"type": "integer", "minimum": 1}}, ["query"]),
  "tool_translate": obj({"text": string, "source_lang": {"type": "string", "pattern": "^[a-z]{2}(-[A-Z]{2})?$"},
                         "target_lang": {"type": "string", "pattern": "^[a-z]{2}(-[A-Z]{2})?$"}, "formality": {"enum": ["default", "more", "less"]}}, ["text", "target_lang"]),
  "tool_set_reminder": obj({"message": {"type": "string", "minLength": 1, "maxLength": 100}, "when": {"type": "string", "format": "date-time"},
                            "repeat": {"anyOf": [{"enum": ["daily", "weekly", "monthly"]}, {"type": "null"}]}}, ["message", "when"]),
  "tool_run_tests": obj({"paths": {"type": "array", "items": string}, "markers": {"type": "array", "items": {"type": "string", "pattern": "^[a-z_]+$"}},
                         "fail_fast": boolean, "workers": {"type": "integer", "minimum": 1, "maximum": 64}}, []),
  "tool_kubectl_scale": obj({"namespace": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}, "deployment": string,
                             "replicas": {"type": "integer", "minimum": 0, "maximum": 100}}, ["deployment", "replicas"]),
  "tool_geocode": obj({"address": string, "bounds": {"type": "array", "prefixItems": [number, number, number, number], "items": False, "minItems": 4}}, ["address"]),
  "tool_mcp_filesystem_search": obj({"path": string, "pattern": string, "excludePatterns": {"type": "array", "items": string, "default": []}}, ["path", "pattern"], additionalProperties=False),
}

tools20 = []
for name, sch in list(schemas.items()):
    if name.startswith("tool_") and len(tools20) < 20:
        tools20.append({"type": "function", "function": {"name": name[5:], "description": "tool " + name[5:], "parameters": sch}})
assert len(tools20) == 20, len(tools20)

out = pathlib.Path(__file__).resolve().parents[1] / "data" / "constrain"
out.mkdir(parents=True, exist_ok=True)
(out / "schemas.json").write_text(json.dumps([{"name": k, "schema": v} for k, v in schemas.items()], indent=1, ensure_ascii=False) + "\n")
(out / "tools20.json").write_text(json.dumps(tools20, indent=1, ensure_ascii=False) + "\n")
print(len(schemas), "schemas,", len(tools20), "tools")
