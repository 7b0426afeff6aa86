"""Reading and writing the built data sets (`python -m tasks.build` writes them).

Receives a data folder laid out as `<data_dir>/<key>/{train,test}.npz` plus `manifest.json` files and
hands on dicts of numpy arrays. Knows nothing of how the data was generated or of the model.

Arrays in a split: `inputs` (M, seq_len) uint8 and `targets` (M, out_len) uint8 tokens; `group`
(M,) int32, the index of each row's distinct input (train rows of one input are contiguous).
Test splits of multi-solution tasks hold one row per distinct input and also carry `solutions`
(S, out_len) uint8 and `solution_offsets` (M + 1,) int64: every valid completion of test input g is
`solutions[solution_offsets[g]:solution_offsets[g + 1]]` (for coverage). Extra test splits named
`test-<name>` (nqueens-8-givens: `test-g0`..`test-g4`, k given queens) may repeat an input: its
rows share one group.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tasks.base import TaskError

SPLITS = ("train", "test")  # and extra test splits "test-<name>", e.g. test-g2 (nqueens-8-givens)


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> str:
    """Write arrays as an `.npz` that `np.load` reads, byte-identical for identical arrays (fixed
    timestamps and order, unlike `np.savez`). Returns the file's sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".npz.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buffer.getvalue())
    tmp.replace(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_split(data_dir: str | Path, key: str, split: str) -> dict[str, np.ndarray]:
    """The arrays of one split, e.g. `load_split("data", "nqueens-8", "test")`."""
    if split not in SPLITS and not split.startswith("test-"):
        raise TaskError(f"split must be one of {SPLITS}, got {split!r}", field="split")
    path = Path(data_dir) / key / f"{split}.npz"
    if not path.exists():
        built = sorted(p.parent.name for p in Path(data_dir).glob("*/manifest.json"))
        raise TaskError(
            f"no split {path}; built keys in {data_dir}: {built or 'none'} "
            f"(build with `python -m tasks.build --out {data_dir} --only {key}`)",
            field="key",
        )
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def load_manifest(data_dir: str | Path, key: str | None = None) -> dict[str, Any]:
    """The manifest of one key, or (key=None) the folder's manifest listing every built key."""
    path = Path(data_dir) / (key or "") / "manifest.json"
    if not path.exists():
        raise TaskError(f"no manifest at {path}", field="key")
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def completions(split: dict[str, np.ndarray], group: int) -> np.ndarray:
    """Every valid completion (S_g, out_len) of distinct input `group` of a multi-solution split."""
    offsets = split["solution_offsets"]
    return split["solutions"][offsets[group] : offsets[group + 1]]
