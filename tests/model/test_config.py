"""model/config.py: the colour count lives in the model config and sets the task's vocabulary."""

from __future__ import annotations

from model.config import ModelConfig, task_of
from tasks import get_task


def test_the_colour_count_of_a_model_sets_its_vocabulary() -> None:
    four = task_of(ModelConfig(task="graph_coloring", task_size=8, num_colors=4))
    assert (four.num_colors, four.vocab_size) == (4, 7)
    assert task_of(ModelConfig(task="graph_coloring", task_size=8)).vocab_size == 6  # 3 by default
    assert task_of(ModelConfig(task="sudoku", task_size=4, num_colors=4)).vocab_size == 6  # no colours
    assert get_task("nqueens", 8).num_colors is None
