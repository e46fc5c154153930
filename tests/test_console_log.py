"""Console logs kept in results/ lose their progress-bar refreshes and nothing else."""

from __future__ import annotations

from pathlib import Path

from catdog.console_log import main, strip_progress


def test_each_bar_keeps_its_last_state_and_other_lines_stay() -> None:
    text = ("Running stage 'distill':\n"
            "kd 1:   0%|          | 0/3 [00:00<?]\rkd 1:  33%|###       | 1/3 [00:01<00:02]\r"
            "kd 1: 100%|##########| 3/3 [00:03<00:00]\r\n"
            "\n\n"
            "distill-kd:  50%|#####     | 1/2 [00:03<00:03, val/acc=0.61]\n"
            "kd 2:   0%|          | 0/3 [00:00<?]\n"
            "kd 2: 100%|##########| 3/3 [00:03<00:00]\n"
            "distill-kd: 100%|##########| 2/2 [00:06<00:00, val/acc=0.72]\n"
            "distill: best val epoch 2\n")
    assert strip_progress(text) == (
        "Running stage 'distill':\n"
        "kd 1: 100%|##########| 3/3 [00:03<00:00]\n"
        "\n"
        "distill-kd:  50%|#####     | 1/2 [00:03<00:03, val/acc=0.61]\n"  # kd 2 came between
        "kd 2: 100%|##########| 3/3 [00:03<00:00]\n"
        "distill-kd: 100%|##########| 2/2 [00:06<00:00, val/acc=0.72]\n"
        "distill: best val epoch 2\n")


def test_two_bars_on_one_line_both_keep_their_last_state() -> None:
    text = "teacher labeled:  50%|#| 1/2\rteacher labeled: 100%|##| 2/2\rteacher val: 100%|##| 1/1\n"
    assert strip_progress(text) == "teacher labeled: 100%|##| 2/2\nteacher val: 100%|##| 1/1\n"


def test_a_log_without_bars_is_left_as_it_was(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("sweep: data.size=3000 train.seed=0\nStage 'fetch' is cached\n")
    main([str(log)])
    assert log.read_text() == "sweep: data.size=3000 train.seed=0\nStage 'fetch' is cached\n"
