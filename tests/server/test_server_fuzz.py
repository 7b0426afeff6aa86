"""Schema fuzzing (schemathesis) of every operation in /openapi.json against a real uvicorn, with
schema-valid and schema-violating data: no 5xx, every status code, content type and body as
documented (the error envelope included), invalid data rejected. Bounded number of examples.

schemathesis' own pytest plugin (`from_fixture` + `parametrize`) does not run under pytest 9, so
the cases come from its hypothesis strategies directly."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 25  # per operation and mode


def test_fuzz_every_operation(serve) -> None:
    # small caps, so that the generated requests that are valid stay cheap
    with serve(max_width=4, max_steps=2, max_count=4, max_top_k=4, warmup=False, log_level="ERROR") as srv:
        schema = schemathesis.openapi.from_url(f"{srv.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} >= {"/solve", "/generate", "/models", "/healthz", "/readyz"}
        seen: dict[str, set[int]] = {}
        for op in operations:
            fuzz(op, GenerationMode.POSITIVE, srv.url, seen)
            if op.method.upper() == "POST":  # operations without inputs have no invalid data
                fuzz(op, GenerationMode.NEGATIVE, srv.url, seen)
        assert all(code < 500 for codes in seen.values() for code in codes), seen
        assert 422 in seen["POST /solve"] and 422 in seen["POST /generate"]


def fuzz(op, mode: GenerationMode, url: str, seen: dict[str, set[int]]) -> None:
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])
    label = f"{op.method.upper()} {op.path}"

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        response = case.call_and_validate(base_url=url, checks=checks)
        seen.setdefault(label, set()).add(response.status_code)

    run()
