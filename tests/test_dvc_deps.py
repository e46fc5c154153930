"""dvc.yaml is complete: every project module a stage's command imports is one of its deps.

The imports are read from the code (ast), transitively, so a new `from catdog.x import y` in any
module a stage uses fails here until dvc.yaml lists src/catdog/x.py for that stage; otherwise
`dvc repro` would keep stale outputs after x.py changed."""

from __future__ import annotations

import ast

import pytest
from dvc_yaml import REPO, module_file, stage_bodies, stage_module


def direct_imports(module: str) -> set[str]:
    """catdog modules imported by `module` (absolute imports: `import catdog.x`, `from catdog.x
    import y`, where y may itself be a module)."""
    found = set()
    for node in ast.walk(ast.parse(module_file(module).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "catdog":
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "catdog"}
    return {m for m in found if module_file(m).is_file()}


def import_closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(direct_imports(current))
    return seen


def test_import_closure_follows_from_imports_transitively() -> None:
    closure = import_closure("catdog.stages.distill")
    # distill -> supervised -> train_loop -> atomic: two hops away, still found
    assert {"catdog.supervised", "catdog.train_loop", "catdog.atomic"} <= closure
    assert "catdog.stages.pretrain" not in closure  # stages never import each other


@pytest.mark.parametrize("stage", sorted(stage_bodies()))
def test_stage_deps_list_every_module_its_command_imports(stage: str) -> None:
    body = stage_bodies()[stage]
    needed = {module_file(m).relative_to(REPO).as_posix()
              for m in import_closure(stage_module(body))}
    needed.discard("src/catdog/__init__.py")  # holds only constants every module shares
    missing = needed - set(body.get("deps", []))
    assert not missing, f"dvc.yaml stage {stage!r} lacks deps: {sorted(missing)}"
