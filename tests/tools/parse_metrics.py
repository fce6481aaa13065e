"""Parses a Prometheus exposition with the Prometheus project's own Python parsers and prints
every sample as JSON, so that tests/api.rs checks mirror's /metrics with a parser it did not write.

Usage: parse_metrics.py text|openmetrics < exposition
Exits non-zero (with the parser's message) when the exposition does not parse.
"""

import json
import math
import sys

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families


def main() -> None:
    kind = sys.argv[1]
    text = sys.stdin.read()
    parse = openmetrics_families if kind == "openmetrics" else text_families
    samples = []
    for family in parse(text):
        for sample in family.samples:
            value = sample.value
            samples.append(
                {
                    "family": family.name,
                    "type": family.type,
                    "unit": getattr(family, "unit", ""),
                    "name": sample.name,
                    "labels": sample.labels,
                    "value": value if math.isfinite(value) else str(value),
                }
            )
    json.dump(samples, sys.stdout)


if __name__ == "__main__":
    main()
