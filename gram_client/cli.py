"""`python -m gram_client`: solve, generate and list models from the command line.

Receives argparse arguments: a puzzle as a literal, a file (`-` for stdin) or a DIMACS `.col` file;
hands them to `GramClient` and prints boards with verifier badges, or the response JSON (`--json`)
for scripts; `solve --stream` prints a live progress line and each candidate as it verifies. Exit status: 0 answered, 1 the server refused (error envelope), 2 bad input or usage,
3 no answer (connection failure or timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel

from gram_client.dimacs import DimacsError, looks_like_dimacs, parse_dimacs
from gram_client.errors import GramConnectionError, GramError, GramTimeoutError, StreamFailedError
from gram_client.render import badge, render_answer, sudoku_digits
from gram_client.retry import RetryPolicy
from gram_client.schemas import (
    Candidate,
    CandidateEvent,
    ErrorResponse,
    GenerateResponse,
    ModelInfo,
    ProgressEvent,
    SolveResponse,
)
from gram_client.sdk import DEFAULT_URL, GramClient

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NO_ANSWER = 0, 1, 2, 3
TASKS = ("sudoku", "nqueens", "graph_coloring")


class InputError(ValueError):
    """A puzzle the CLI cannot read (missing file, bad JSON, bad DIMACS)."""


# ----------------------------------------------------------------------------- reading puzzles


def read_puzzle(task: str, source: str, num_colors: int = 3, stdin: TextIO | None = None) -> Any:
    """A literal puzzle, a path to one, or `-` (stdin) -> the task-native puzzle of the contract.

    sudoku: digits with `.`/`0` blanks (whitespace and box lines ignored) or a JSON list of rows;
    nqueens: JSON `{"n", "queens"}`, or just `N` for an empty N x N board;
    graph_coloring: JSON `{"num_nodes", "edges", "num_colors"}` or DIMACS text (`p edge N M`)."""
    if source == "-":
        text = (stdin or sys.stdin).read()
    else:
        path = Path(source)
        try:
            is_file = path.is_file()
        except OSError:  # e.g. a literal too long to be a file name
            is_file = False
        text = path.read_text() if is_file else source
    stripped = text.strip()
    if task == "sudoku":
        return _json(stripped) if stripped.startswith("[") else sudoku_digits(stripped)
    if task == "nqueens":
        return {"n": int(stripped), "queens": []} if stripped.isdigit() else _json(stripped)
    if task == "graph_coloring":
        if source.endswith(".col") or looks_like_dimacs(stripped):
            try:
                return parse_dimacs(stripped, num_colors)
            except DimacsError as exc:
                raise InputError(f"DIMACS: {exc}") from None
        puzzle = _json(stripped)
        if isinstance(puzzle, dict):
            puzzle.setdefault("num_colors", num_colors)
        return puzzle
    raise InputError(f"unknown task {task!r}; one of {', '.join(TASKS)}")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


# ----------------------------------------------------------------------------- printing


def _native(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


def _timing(t: Any) -> str:
    return f"queue {t.queue:.1f} ms, compute {t.compute:.1f} ms, total {t.total:.1f} ms"


def candidate_badge(cand: Candidate, width: int, color: bool) -> str:
    """The verifier badge of one ranked candidate (votes out of the request's width, LPRM value)."""
    return badge(
        cand.valid, cand.violations, cand.score, votes=cand.votes, width=width, lprm=cand.lprm, color=color
    )


def format_solve(answer: SolveResponse, puzzle: Any, *, color: bool = False, ascii: bool = False) -> str:
    lines = [
        f"{answer.task} · model {answer.model} · seed {answer.seed} · width {answer.width} · steps {answer.steps}"
    ]
    lines += [
        "puzzle:",
        render_answer(answer.task, _puzzle_as_answer(answer.task, puzzle), color=color, ascii=ascii),
    ]
    for rank, cand in enumerate(answer.candidates, start=1):
        tag = candidate_badge(cand, answer.width, color)
        lines += ["", f"candidate {rank}/{len(answer.candidates)}  {tag}"]
        lines.append(render_answer(answer.task, _native(cand.solution), puzzle, color=color, ascii=ascii))
    if not answer.candidates:
        lines += ["", "no candidates"]
    lines += [
        "",
        f"{answer.num_distinct} distinct; {answer.num_valid_trajectories}/{answer.num_trajectories} trajectories "
        f"valid; {_timing(answer.timing_ms)}",
    ]
    return "\n".join(lines)


def _puzzle_as_answer(task: str, puzzle: Any) -> Any:
    """Show the input the way answers are shown: the given queens on their board, the graph's edges."""
    if task == "graph_coloring" and isinstance(puzzle, dict):
        edges = puzzle.get("edges", [])
        return (
            f"{puzzle.get('num_nodes')} nodes, {len(edges)} edges, {puzzle.get('num_colors')} colours: "
            + (" ".join(f"{u}-{v}" for u, v in edges))
        )
    return puzzle


def format_generate(answer: GenerateResponse, *, color: bool = False, ascii: bool = False) -> str:
    lines = [f"{answer.task} · model {answer.model} · seed {answer.seed} · {len(answer.samples)} samples"]
    for i, sample in enumerate(answer.samples, start=1):
        tag = badge(sample.valid, sample.violations, sample.score, color=color)
        lines += ["", f"sample {i}/{len(answer.samples)}  {tag}"]
        lines.append(render_answer(answer.task, _native(sample.sample), color=color, ascii=ascii))
    lines += [
        "",
        f"{answer.num_valid}/{len(answer.samples)} valid, {answer.num_distinct} distinct; {_timing(answer.timing_ms)}",
    ]
    return "\n".join(lines)


def format_models(models: list[ModelInfo]) -> str:
    if not models:
        return "no models loaded"
    head = ("name", "task", "size", "kind", "parameters", "default")
    rows = [
        (
            m.name,
            m.task,
            str(m.size) + (f" ({m.num_colors} colours)" if m.num_colors else ""),
            " + ".join(m.endpoints or ["solve" if m.conditional else "generate"]),
            f"{m.parameters:,}",
            "yes" if m.default else "",
        )
        for m in models
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [head, *rows]
    )


# ----------------------------------------------------------------------------- arguments


def _add_common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Options accepted before or after the subcommand (after it, only given ones override)."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--url",
        default=default(os.environ.get("GRAM_URL", DEFAULT_URL)),
        help="server URL (env GRAM_URL; default %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=default(60.0), help="seconds per try (default 60)")
    parser.add_argument(
        "--retries", type=int, default=default(3), help="retries on 429/503/connection errors"
    )
    parser.add_argument("--api-key", default=default(os.environ.get("GRAM_API_KEY")), help="env GRAM_API_KEY")
    parser.add_argument("--json", action="store_true", default=default(False), help="print the response JSON")
    parser.add_argument("--ascii", action="store_true", default=default(False), help="ASCII box lines only")
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default=default("auto"),
        help="ANSI colour (auto: on a terminal, unless NO_COLOR is set)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gram-client", description="GRAM serve client.")
    _add_common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True)

    solve = sub.add_parser("solve", help="sample width trajectories for one puzzle (POST /solve)")
    solve.add_argument("task", choices=TASKS)
    solve.add_argument("puzzle", help="a literal puzzle, a file (.col for DIMACS), or - for stdin")
    solve.add_argument("--width", type=int, default=16, help="parallel trajectories")
    solve.add_argument("--steps", type=int, help="step budget (default: the model's, see `models`)")
    solve.add_argument("--halt", choices=("verified", "head", "never"), default="verified")
    solve.add_argument("--symmetry", action=argparse.BooleanOptionalAction, help="a symmetry per trajectory")
    solve.add_argument("--seed", type=int)
    solve.add_argument("--select", choices=("verifier", "vote", "lprm"), default="verifier")
    solve.add_argument("--top-k", type=int, default=5)
    solve.add_argument("--deadline-ms", type=int)
    solve.add_argument("--model")
    solve.add_argument("--stop-after-valid", type=int, help="stop siblings after this many valid candidates")
    solve.add_argument("--colors", type=int, default=3, help="graph colouring: colours (DIMACS has none)")
    solve.add_argument(
        "--stream",
        action="store_true",
        help="show progress and each valid candidate as it appears (--json: one event per line)",
    )
    _add_common(solve, suppress=True)

    gen = sub.add_parser("generate", help="unconditional samples (POST /generate)")
    gen.add_argument("task", choices=TASKS)
    gen.add_argument("--size", type=int)
    gen.add_argument("--count", type=int, default=8)
    gen.add_argument("--steps", type=int, help="step budget (default: the model's)")
    gen.add_argument("--seed", type=int)
    gen.add_argument("--deadline-ms", type=int)
    gen.add_argument("--model")
    gen.add_argument("--halt", choices=("verified", "head", "never"), default="verified")
    gen.add_argument("--symmetry", action=argparse.BooleanOptionalAction, help="a symmetry per trajectory")
    _add_common(gen, suppress=True)

    models = sub.add_parser("models", help="list the loaded checkpoints (GET /models)")
    _add_common(models, suppress=True)
    health = sub.add_parser("health", help="liveness and readiness (GET /healthz, /readyz)")
    _add_common(health, suppress=True)
    return parser


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = build_parser().parse_args(argv)
    color = args.color == "always" or (
        args.color == "auto" and out.isatty() and not os.environ.get("NO_COLOR")
    )

    def on_retry(error: GramError, attempt: int, delay: float) -> None:
        print(f"retrying in {delay:.2f}s after try {attempt}: {error}", file=err)

    retry = RetryPolicy(max_attempts=max(0, args.retries) + 1)
    try:
        with GramClient(
            args.url, timeout=args.timeout, retry=retry, api_key=args.api_key, on_retry=on_retry
        ) as gram:
            text, payload = _run(args, gram, color, out, err)
    except InputError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    except GramError as exc:
        if args.json:
            print(json.dumps(exc.envelope(), indent=2), file=out)
        print(f"error: {exc}", file=err)
        if isinstance(exc, GramConnectionError | GramTimeoutError):
            return EXIT_NO_ANSWER
        return EXIT_REFUSED if exc.status is not None else EXIT_USAGE
    print(payload if args.json else text, file=out)
    return EXIT_OK


def _run(
    args: argparse.Namespace, gram: GramClient, color: bool, out: TextIO, err: TextIO
) -> tuple[str, str]:
    """Run one subcommand -> (human text, JSON text)."""
    if args.command == "solve":
        puzzle = read_puzzle(args.task, args.puzzle, args.colors)
        options: dict[str, Any] = dict(
            width=args.width,
            steps=args.steps,
            seed=args.seed,
            select=args.select,
            top_k=args.top_k,
            deadline_ms=args.deadline_ms,
            model=args.model,
            stop_after_valid=args.stop_after_valid,
            halt=args.halt,
            symmetry=args.symmetry,
        )
        if args.stream:
            return _solve_stream(args, gram, puzzle, options, color, out, err)
        answer = gram.solve(args.task, puzzle, **options)
        return format_solve(answer, puzzle, color=color, ascii=args.ascii), answer.model_dump_json(indent=2)
    if args.command == "generate":
        sample = gram.generate(
            args.task,
            args.size,
            count=args.count,
            steps=args.steps,
            seed=args.seed,
            deadline_ms=args.deadline_ms,
            model=args.model,
            halt=args.halt,
            symmetry=args.symmetry,
        )
        return format_generate(sample, color=color, ascii=args.ascii), sample.model_dump_json(indent=2)
    if args.command == "models":
        models = gram.models()
        return format_models(models), json.dumps([m.model_dump() for m in models], indent=2)
    health = gram.health()
    ready = gram.ready()
    text = f"{args.url}: alive ({health.status}), ready with models {', '.join(ready.models) or '(none)'}"
    return text, json.dumps({"health": health.model_dump(), "ready": ready.model_dump()}, indent=2)


class _ProgressLine:
    """One status line on stderr: rewritten in place on a terminal, one line per update otherwise."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.tty = err.isatty()
        self.shown = False

    def show(self, text: str) -> None:
        if self.tty:
            self.err.write("\r\033[K" + text)
            self.shown = True
        else:
            self.err.write(text + "\n")
        self.err.flush()

    def clear(self) -> None:
        if self.shown:
            self.err.write("\r\033[K")
            self.err.flush()
            self.shown = False


def _solve_stream(
    args: argparse.Namespace,
    gram: GramClient,
    puzzle: Any,
    options: dict[str, Any],
    color: bool,
    out: TextIO,
    err: TextIO,
) -> tuple[str, str]:
    """Print each event as it arrives; return the closing text (ranking and totals) or done's JSON."""
    line = _ProgressLine(err)
    found = 0
    for event in gram.solve_stream(args.task, puzzle, **options):
        if isinstance(event, ErrorResponse):
            line.clear()
            e = event.error
            raise StreamFailedError(
                e.message,
                status=200,
                type=e.type,
                field=e.field,
                retryable=e.retryable,
                request_id=e.request_id,
            )
        if isinstance(event, SolveResponse):
            line.clear()
            if args.json:
                return "", json.dumps({"event": "done", "data": event.model_dump(mode="json")})
            return _stream_summary(event, color), ""
        if args.json:
            name = "progress" if isinstance(event, ProgressEvent) else "candidate"
            print(json.dumps({"event": name, "data": event.model_dump(mode="json")}), file=out, flush=True)
        elif isinstance(event, ProgressEvent):
            line.show(
                f"step {event.step}{f'/{args.steps}' if args.steps else ''} · {event.valid_trajectories}/{args.width} trajectories valid "
                f"· {event.distinct_valid} distinct · {event.elapsed_ms:.0f} ms"
            )
        elif isinstance(event, CandidateEvent):
            line.clear()
            found += 1
            tag = badge(event.valid, event.violations, event.score, color=color)
            print(
                f"candidate {found} (trajectory {event.trajectory}, step {event.step}, "
                f"{event.elapsed_ms:.0f} ms)  {tag}",
                file=out,
            )
            print(
                render_answer(args.task, _native(event.solution), puzzle, color=color, ascii=args.ascii),
                file=out,
            )
            print(file=out, flush=True)
    raise AssertionError("unreachable: the stream ends with done or error")  # events() enforces it


def _stream_summary(answer: SolveResponse, color: bool) -> str:
    """After the streamed candidates: the final ranking as badges, then the totals."""
    lines = [
        f"{answer.task} · model {answer.model} · seed {answer.seed} · width {answer.width} · steps {answer.steps}"
    ]
    for rank, cand in enumerate(answer.candidates, start=1):
        tag = candidate_badge(cand, answer.width, color)
        lines.append(f"  {rank}. {tag}")
    lines.append(
        f"{answer.num_distinct} distinct; {answer.num_valid_trajectories}/{answer.num_trajectories} trajectories "
        f"valid; {_timing(answer.timing_ms)}"
    )
    return "\n".join(lines)
