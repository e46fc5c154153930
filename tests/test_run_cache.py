"""Every stage that can be restored from DVC's run cache is: queued experiments reuse them.

DVC saves a stage to its run cache only when no output outside `metrics:` and `plots:` has
`cache: false` (dvc/stage/__init__.py, Stage.run), and never restores a stage with a `persist`
output. With one uncached wall-time file under `outs:`, every `dvc exp run --queue` experiment
redid prepare, the teacher and its 10k logits (10 minutes on a 2-core CPU) before its own stage.
"""

from __future__ import annotations

from dvc_yaml import entries, stage_bodies

# Stages before training, the slow ones a queued experiment would otherwise redo. The scoring
# stages (teacher_score, evaluate, featuremaps) keep their plot tables and pictures as uncached
# outs, tracked by git: as stage `plots:` DVC would also draw each table alone in `dvc plots show`
# with its default template, next to the project's own plots. They rerun in seconds.
RUN_CACHED = ("fetch", "prepare", "pool", "teacher", "teacher_logits")


def test_data_and_teacher_stages_can_use_the_run_cache() -> None:
    stages = stage_bodies()
    for name in RUN_CACHED:
        outs = entries(stages[name], "outs")
        assert outs, name
        assert not any(opts.get("persist") for _, opts in outs), name
        uncached = [path for path, opts in outs if opts.get("cache") is False]
        assert not uncached, f"{name}: {uncached} under outs with cache: false disables its run cache; " \
            "cache them, or declare them under metrics:"

