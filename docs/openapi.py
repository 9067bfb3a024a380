"""Makes docs/openapi.json, which yolod serves at GET /openapi.json, from
docs/openapi.yaml (the file to edit). Needs PyYAML.

usage: python3 docs/openapi.py          # writes docs/openapi.json
       python3 docs/openapi.py --check  # fails if docs/openapi.json is stale
"""
import json
import pathlib
import sys

import yaml

here = pathlib.Path(__file__).resolve().parent
document = yaml.safe_load((here / "openapi.yaml").read_text())
text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
target = here / "openapi.json"
if "--check" in sys.argv[1:]:
    if target.read_text() != text:
        sys.exit("docs/openapi.json is stale: run python3 docs/openapi.py")
    print("docs/openapi.json matches docs/openapi.yaml")
else:
    target.write_text(text)
