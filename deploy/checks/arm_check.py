"""Checks an ARM template beyond JSON syntax: every parameter is used, every parameter and
variable referenced is declared, every variable declared is used.

Usage: python arm_check.py TEMPLATE.json...
Exit 1 with one line per problem.
"""

import json
import re
import sys

REFERENCE = re.compile(r"\b(parameters|variables)\('([^']+)'\)")


def expressions(node):
    """Every string in the template (keys included), where ARM expressions live."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)
    elif isinstance(node, str):
        yield node


def check(path):
    with open(path, encoding="utf-8") as f:
        template = json.load(f)
    problems = []
    for key in ("$schema", "contentVersion", "resources"):
        if key not in template:
            problems.append(f"{path}: no {key!r}")
    declared = {
        "parameters": set(template.get("parameters", {})),
        "variables": set(template.get("variables", {})),
    }
    # A parameter's own definition (e.g. its defaultValue) does not count as a use of it.
    body = {k: v for k, v in template.items() if k != "parameters"}
    defaults = [p.get("defaultValue") for p in template.get("parameters", {}).values()]
    used = {"parameters": set(), "variables": set()}
    for text in list(expressions(body)) + list(expressions(defaults)):
        for kind, name in REFERENCE.findall(text):
            used[kind].add(name)
    for kind in ("parameters", "variables"):
        for name in sorted(used[kind] - declared[kind]):
            problems.append(f"{path}: {kind}('{name}') is referenced but not declared")
        for name in sorted(declared[kind] - used[kind]):
            problems.append(f"{path}: {kind[:-1]} '{name}' is declared but never used")
    return problems


def main():
    problems = [p for path in sys.argv[1:] for p in check(path)]
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"arm_check: {len(sys.argv) - 1} template(s): valid JSON, every parameter and variable used and declared")


if __name__ == "__main__":
    main()
