"""Wire schemas of the HTTP contract (docs/http-api.md sections 1-2): requests, responses, errors.

Receives nothing; hands on pydantic models that the server's routes validate against and that the
SDK builds requests from and reads responses into. Pydantic and the standard library only: no torch, no
FastAPI, no server internals. Caps that depend on settings (max width, steps...) are checked by
the server, not here; the puzzle's task-native content is checked by the task's parser.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

TaskName = Literal["sudoku", "nqueens", "graph_coloring"]
STEPS = (
    "the step budget (depth), 1..max_steps: a trajectory retires at the latest after this many "
    "supervision steps; null: the model's default budget (GET /models, `defaults`)"
)
HALT = (
    "when a trajectory retires before its budget: `verified` at the first step its answer passes "
    "the exact verifier, `head` when the model's halting head says stop, `never` (every trajectory "
    "runs the whole budget)"
)
SYMMETRY = (
    "run each trajectory but the first on its own random symmetry of the puzzle (Sudoku: digits, "
    "transpose, bands, stacks, rows and columns within them; N-Queens: the board's 8 symmetries; "
    "colouring: node relabelling), answers mapped back before verification; null: the model's default"
)
SelectRule = Literal["verifier", "vote", "lprm"]
HaltRule = Literal["verified", "head", "never"]
MAX_SEED = 2**63 - 1
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # a checkpoint folder name


ModelName = Annotated[str, StringConstraints(pattern=MODEL_NAME)]


def _whole(value: Any) -> Any:
    """JSON Schema's integer includes 4.0: take a whole float as the int it is (strings stay wrong)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


WireInt = Annotated[StrictInt, BeforeValidator(_whole)]  # an int on the wire: 4 or 4.0, not "4"
# bounds before the validator, so that the JSON schema states them (also inside `X | None`)
Positive = Annotated[StrictInt, Field(ge=1), BeforeValidator(_whole)]
Seed = Annotated[StrictInt, Field(ge=0, le=MAX_SEED), BeforeValidator(_whole)]
Node = Annotated[StrictInt, Field(ge=0, le=15), BeforeValidator(_whole)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# ----------------------------------------------------------------------------- puzzles, per task

_WS = "[ \t\r\n]*"


def _sudoku_cells(n: int) -> str:
    return f"(?:[.0-{n}]{_WS}){{{n * n}}}"


# n*n cells row by row, '.' or '0' blank, digits 1..n; spaces and newlines anywhere are ignored
SudokuString = Annotated[
    str, StringConstraints(pattern=f"^{_WS}(?:{_sudoku_cells(4)}|{_sudoku_cells(6)}|{_sudoku_cells(9)})$")
]


def _sudoku_grid(n: int) -> Any:
    cell = Annotated[StrictInt, Field(ge=0, le=n), BeforeValidator(_whole)]
    row = Annotated[list[cell], Field(min_length=n, max_length=n)]  # type: ignore[valid-type]
    return Annotated[list[row], Field(min_length=n, max_length=n)]  # type: ignore[valid-type]


SudokuPuzzle = SudokuString | _sudoku_grid(4) | _sudoku_grid(6) | _sudoku_grid(9)
Pair = Annotated[list[Node], Field(min_length=2, max_length=2)]


class QueensInput(_Strict):
    """An N-Queens puzzle: board size and the given queens as 0-based [row, col] pairs (< n)."""

    n: WireInt = Field(ge=4, le=12)
    queens: list[Pair] = Field(default_factory=list, max_length=12)


class GraphInput(_Strict):
    """A graph colouring puzzle: 0-based undirected edges [u, v] (u != v, both < num_nodes)."""

    num_nodes: WireInt = Field(ge=3, le=16)
    edges: list[Pair] = Field(default_factory=list, max_length=120)
    num_colors: WireInt = Field(default=3, ge=1, le=16)


# The puzzle each task accepts (the OpenAPI schema ties it to `task`, see server/app.py).
PUZZLES: dict[str, Any] = {"sudoku": SudokuPuzzle, "nqueens": QueensInput, "graph_coloring": GraphInput}
_PUZZLE_CHECKS = {task: TypeAdapter(shape) for task, shape in PUZZLES.items()}
Puzzle = str | list[Any] | dict[str, Any]  # task-native, as the task parsers read it


class QueensPuzzle(_Strict):
    """An N-Queens solution: board size and every queen on the board as a 0-based [row, col] pair."""

    n: int = Field(ge=4, le=12)
    queens: list[list[int]] = Field(default_factory=list)


class ColoringSolution(_Strict):
    colors: list[int]  # colour per node, 0..num_colors-1 (-1 where the model produced no colour)


Solution = str | QueensPuzzle | ColoringSolution  # sudoku: n*n digits, row by row


class SolveRequest(_Strict):
    """POST /solve: conditional sampling p(y|x) of `width` trajectories for one puzzle."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"task": "sudoku", "puzzle": "1.3...1..1..4...", "width": 16, "steps": 16, "seed": 0},
                {
                    "task": "nqueens",
                    "puzzle": {"n": 8, "queens": [[0, 0], [1, 4]]},
                    "width": 32,
                    "select": "vote",
                },
                {
                    "task": "graph_coloring",
                    "puzzle": {"num_nodes": 8, "edges": [[0, 1], [1, 2], [2, 0], [3, 4]], "num_colors": 3},
                    "width": 8,
                    "top_k": 3,
                },
            ]
        },
    )

    task: TaskName
    puzzle: Puzzle = Field(description="the task's puzzle: see the schema's oneOf by task")
    width: WireInt = Field(default=16, ge=1, description="parallel trajectories, 1..max_width")
    steps: Positive | None = Field(default=None, description=STEPS)
    halt: HaltRule = Field(default="verified", description=HALT)
    symmetry: bool | None = Field(default=None, description=SYMMETRY)
    seed: Seed | None = Field(default=None, description="null: the server picks and echoes one")
    select: SelectRule = "verifier"
    top_k: WireInt = Field(default=5, ge=1, description="distinct candidates returned")
    deadline_ms: Positive | None = Field(default=None, description="answer 504 if not done by then")
    model: ModelName | None = Field(
        default=None, description="checkpoint name; default: the one for this task+size"
    )
    stop_after_valid: Positive | None = Field(
        default=None,
        description="stop at the first step at which the trajectories' answers hold this many "
        "distinct valid candidates; every trajectory answers what it had then (the same whatever "
        "the scheduling); left out: the model's default (GET /models), null: no early stop",
    )
    stream: bool = Field(
        default=False,
        description="answer text/event-stream: progress and candidate events, then done "
        "(this response) or error; as does `Accept: text/event-stream`",
    )

    @field_validator("puzzle")
    @classmethod
    def _fits_the_task(cls, puzzle: Any, info: ValidationInfo) -> Any:
        """The puzzle has the shape its task accepts (`PUZZLES`); it stays task-native."""
        task = info.data.get("task")
        if task in _PUZZLE_CHECKS:
            try:
                checked = _PUZZLE_CHECKS[task].validate_python(puzzle, strict=True)
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(p) for p in first["loc"] if isinstance(p, int) or str(p).isidentifier())
                raise ValueError(f"not a {task} puzzle ({where or 'puzzle'}: {first['msg']})") from None
            return _PUZZLE_CHECKS[task].dump_python(checked)  # whole floats now ints
        return puzzle


class Timing(BaseModel):
    queue: float  # ms from admission to the first row computed
    compute: float  # ms from the first row computed to the last
    total: float  # ms from the request's arrival to its answer


SCORE = (
    "the fraction of the task's constraints that hold, in [0, 1]; 1.0 iff valid. sudoku: cells that "
    "hold a digit (the given one where there is a given) repeated nowhere in their row, column or box, "
    "of n*n. graph_coloring: one constraint per node (it has a colour) and per edge (both ends "
    "coloured, differently). nqueens: a row is right when it holds exactly one queen (the given one "
    "where there is a given) that no other queen attacks; the constraints are the pairs of rows, a "
    "pair holding when both rows are right, so r of n right rows score r(r-1)/(n(n-1)). A blank cell, "
    "an uncoloured node or a missing queen fails its constraints."
)
VIOLATIONS = (
    "what is wrong, 0 iff valid. sudoku: repeated digits + cells without a digit + changed givens; "
    "graph_coloring: edges with both ends the same colour + nodes without a colour; nqueens: rows "
    "that are not right (see score)"
)


class Candidate(BaseModel):
    solution: Solution
    valid: bool
    violations: int = Field(ge=0, description=VIOLATIONS)
    score: float = Field(ge=0, le=1, description=SCORE)
    votes: int = Field(
        ge=1, description="trajectories behind this candidate (equal up to the task's symmetry)"
    )
    lprm: float = Field(description="LPRM value, mean over its trajectories")
    step: int = Field(
        default=0, ge=0, description="the fewest supervision steps after which a trajectory gave it"
    )


class SolveResponse(BaseModel):
    task: TaskName
    model: str
    seed: int
    width: int
    steps: int
    candidates: list[Candidate]
    num_distinct: int = Field(description="distinct candidates, up to the task's symmetry")
    num_valid_trajectories: int
    num_trajectories: int  # trajectories retired with an answer (< width after stop_after_valid)
    trajectory_steps: int = Field(
        default=0, ge=0, description="supervision steps behind the answer, summed over trajectories"
    )
    timing_ms: Timing


class GenerateRequest(_Strict):
    """POST /generate: unconditional sampling p(x) of `count` samples from a generator checkpoint."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"task": "sudoku", "size": 4, "count": 8, "steps": 16, "seed": 0}]},
    )

    task: TaskName = "sudoku"
    size: Annotated[StrictInt, Field(ge=1, le=16), BeforeValidator(_whole)] | None = Field(
        default=None, description="null: the only generator loaded for the task"
    )
    count: WireInt = Field(default=8, ge=1, description="samples, 1..max_count")
    steps: Positive | None = Field(default=None, description=STEPS)
    halt: HaltRule = Field(default="verified", description=HALT)
    symmetry: bool | None = Field(default=None, description=SYMMETRY)
    seed: Seed | None = None
    deadline_ms: Positive | None = None
    model: ModelName | None = None
    stream: bool = Field(default=False, description="answer text/event-stream with sample events")


class Sample(BaseModel):
    sample: Solution
    valid: bool
    violations: int = Field(ge=0, description=VIOLATIONS)
    score: float = Field(ge=0, le=1, description=SCORE)
    step: int = Field(default=0, ge=0, description="the supervision steps its trajectory ran")


class GenerateResponse(BaseModel):
    task: TaskName
    model: str
    seed: int
    samples: list[Sample]
    num_valid: int
    num_distinct: int
    trajectory_steps: int = Field(default=0, ge=0, description="supervision steps behind the samples, summed")
    timing_ms: Timing


class ProgressEvent(BaseModel):
    """Stream event `progress`: after each supervision step of the request (at most one per step)."""

    step: int  # supervision steps done, averaged over the request's trajectories (rounded down)
    valid_trajectories: int  # trajectories whose current answer verifies
    distinct_valid: int  # distinct valid answers seen so far
    elapsed_ms: float  # since the request arrived


class CandidateEvent(BaseModel):
    """Stream event `candidate`: a distinct valid answer, the first time a trajectory reaches it."""

    solution: Solution
    valid: bool
    violations: int
    score: float
    trajectory: int  # the trajectory that reached it first
    step: int  # after this many supervision steps
    elapsed_ms: float


class SampleEvent(BaseModel):
    """Stream event `sample` of /generate: a distinct valid sample, the first time one appears."""

    sample: Solution
    valid: bool
    violations: int
    score: float
    trajectory: int
    step: int
    elapsed_ms: float


class ModelInfo(BaseModel):
    name: str
    task: str
    size: int
    conditional: bool  # False: an unconditional generator (POST /generate)
    num_colors: int | None = None  # graph colouring only
    mode: str
    parameters: int
    default: bool  # picked when a request names no model (by at least one of its endpoints)
    # "solve", "generate" or both (a solver trained down to the blank board also generates)
    endpoints: list[str] = Field(default_factory=list)
    config: dict[str, Any]
    metrics: dict[str, Any]  # headline metrics from the checkpoint's card
    defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="what a request that leaves them out gets: steps, symmetry, stop_after_valid",
    )
    # the step that runs it now: "eager", "compiled" (torch.compile'd CPU tiles) or "cuda-graphs";
    # a CPU server answers on "eager" first and turns "compiled" when its compile is done
    step: str | None = None


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class HealthResponse(BaseModel):
    status: Literal["ok"]


class ReadyResponse(BaseModel):
    status: Literal["ready"]
    models: list[str]
    steps: dict[str, str] | None = None  # model -> the step that runs it now (as ModelInfo.step)


class ErrorDetail(BaseModel):
    type: str
    message: str
    field: str | None = None
    retryable: bool = False
    request_id: str | None = None


class ErrorResponse(BaseModel):
    """The one envelope of every non-2xx answer."""

    error: ErrorDetail
