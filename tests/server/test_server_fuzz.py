"""schemathesis against a live uvicorn with every check on: each operation of /openapi.json fuzzed
with schema-valid and schema-violating data. No 5xx; status codes, headers, content types and
bodies as documented; invalid data rejected; and schema-valid data accepted, except for the
refusals the schema documents (EXCEPTIONS below). Bounded number of examples per operation.

schemathesis' own pytest plugin (`from_fixture` + `parametrize`) does not run under pytest 9, so
the cases come from its hypothesis strategies directly."""

from __future__ import annotations

import jsonschema_rs  # schemathesis' own validator
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CHECKS, load_all_checks, not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

load_all_checks()
ALL_CHECKS = CHECKS.get_all()
# Schema-valid requests the server may still refuse, as the 422 / 504 descriptions of the schema say:
EXCEPTIONS = {
    (504, "deadline_exceeded"),  # deadline_ms is a wish, not a guarantee: small ones pass first
    (422, "invalid_puzzle"),  # a puzzle that contradicts itself (clashing givens, attacking queens...)
    (422, "no_model"),  # no loaded checkpoint for that task, size or colour count
    (404, "model_not_found"),  # no loaded checkpoint of the name in `model`
}
EXAMPLES = 40  # per operation and mode


@pytest.mark.slow
def test_fuzz_every_operation_with_every_check(serve) -> None:
    # small caps, so that the generated requests that are valid stay cheap
    with serve(max_width=4, max_steps=2, max_count=4, max_top_k=4, warmup=False, log_level="ERROR") as srv:
        schema = schemathesis.openapi.from_url(f"{srv.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} >= {"/solve", "/generate", "/models", "/healthz", "/readyz"}
        seen: dict[str, set[tuple[int, str]]] = {}
        for op in operations:
            fuzz(op, GenerationMode.POSITIVE, srv.url, seen)
            if op.method.upper() == "POST":  # operations without inputs have no invalid data
                fuzz(op, GenerationMode.NEGATIVE, srv.url, seen)
    assert all(
        status < 500 or (status, kind) in EXCEPTIONS for answers in seen.values() for status, kind in answers
    )
    assert (200, "") in seen["POST /solve positive"] and (200, "") in seen["POST /generate positive"]
    assert any(status == 422 for status, _ in seen["POST /solve negative"])


def fuzz(op, mode: GenerationMode, url: str, seen: dict[str, set[tuple[int, str]]]) -> None:
    label = f"{op.method.upper()} {op.path} {mode.value}"
    positive = mode is GenerationMode.POSITIVE

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases every run
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        response = case.call(base_url=url)
        kind = response.json()["error"]["type"] if response.status_code >= 400 else ""
        seen.setdefault(label, set()).add((response.status_code, kind))
        excused = (response.status_code, kind) in EXCEPTIONS
        if positive:  # positive_data_acceptance, with the documented exceptions
            assert response.status_code < 400 or excused, (case.body, response.text)
        skip = [positive_data_acceptance] + ([not_a_server_error] if excused else [])  # the 504
        case.validate_response(
            response, checks=ALL_CHECKS, excluded_checks=skip, transport_kwargs={"base_url": url}
        )

    run()


@pytest.mark.parametrize(
    "body",
    [
        {"task": "sudoku", "puzzle": ""},  # schemathesis 4.32 found these schema-valid and refused
        {"task": "sudoku", "puzzle": "1" * 16, "model": ""},
        {"task": "sudoku", "puzzle": "5" + "." * 15},  # a digit a 4x4 Sudoku does not have
        {"task": "sudoku", "puzzle": {"n": 4}},  # another task's puzzle
        {"task": "nqueens", "puzzle": "1..." * 4},
        {"task": "graph_coloring", "puzzle": {"num_nodes": 6, "edges": [[0, 1, 2]]}},
        {"task": "sudoku", "puzzle": "." * 16, "width": 65},  # over this server's cap (64)
    ],
)
def test_what_the_server_refuses_the_schema_refuses(live, body) -> None:
    with live.client() as client:
        schema = client.get("/openapi.json").json()
        r = client.post("/solve", json=body)
    request_schema = {"$ref": "#/components/schemas/SolveRequest", "components": schema["components"]}
    validator = jsonschema_rs.Draft202012Validator(request_schema)
    assert validator.is_valid({"task": "sudoku", "puzzle": "1.3.\n..1.\n.1..\n4...", "model": "sudoku-4"})
    assert not validator.is_valid(body)
    assert r.status_code == 422 and r.json()["error"]["type"] == "validation_error", r.text
