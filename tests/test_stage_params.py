"""Every params key a stage reads is declared in its dvc.yaml `params`, or DVC would not rerun
the stage when that key changes.

The reads are found in each stage module's code (ast): `load_or_exit()` results and the
groups taken from them (`cfg = params["distill"]`, `data = load_or_exit()["data"]`, tuple
assignments, `stage_setup(params, "<group>")`, which reads the group, `compute` and
`train.seed`), then every subscript of those names by a string, or by a loop variable over a
tuple of strings. A group handed whole to another function counts as reading all of it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from dvc_yaml import REPO, fill_item, module_file, stage_bodies, stage_items, stage_module

# What catdog.train_loop.stage_setup(params, group) reads besides params[group].
STAGE_SETUP_READS = ("compute", "train.seed")


def string_tuples(tree: ast.Module, extra: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Names bound to tuples/lists of strings, in the module or imported from catdog."""
    found = dict(extra)
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Tuple | ast.List)
                and all(isinstance(e, ast.Constant) and isinstance(e.value, str)
                        for e in node.value.elts)):
            found[node.targets[0].id] = tuple(e.value for e in node.value.elts)
    return found


def imported_tuples(tree: ast.Module) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("catdog"):
            path = module_file(node.module)
            if path.is_file():
                theirs = string_tuples(ast.parse(path.read_text()), {})
                out.update({a.asname or a.name: theirs[a.name] for a in node.names if a.name in theirs})
    return out


def is_load(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and getattr(node.func, "id", None) == "load_or_exit"


def params_read(module_path: Path) -> set[str]:
    """Dotted params keys (or whole groups) the module reads, function by function (a name
    bound to params in one function says nothing of the same name in another)."""
    tree = ast.parse(module_path.read_text())
    tuples = string_tuples(tree, imported_tuples(tree))
    scopes = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    return set().union(*(scope_reads(scope, tuples) for scope in scopes))


def scope_reads(scope: ast.FunctionDef, tuples: dict[str, tuple[str, ...]]) -> set[str]:
    """The params reads of one top-level function, its nested closures included."""
    bound: dict[str, str] = {}  # variable -> "" (all params) or a group name
    reads: set[str] = set()
    loop_values: dict[str, tuple[str, ...]] = {}

    def key_of(node: ast.AST) -> str | None:
        """The dotted key a params expression stands for ("" = all params), else None."""
        if is_load(node):
            return ""
        if isinstance(node, ast.Name):
            return bound.get(node.id)
        if isinstance(node, ast.Subscript):
            base = key_of(node.value)
            if base is None:
                return None
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                return f"{base}.{node.slice.value}".lstrip(".")
        return None

    for node in ast.walk(scope):  # loop variables over string tuples
        if isinstance(node, ast.For | ast.comprehension) and isinstance(node.target, ast.Name):
            if isinstance(node.iter, ast.Name) and node.iter.id in tuples:
                loop_values[node.target.id] = tuples[node.iter.id]
    for node in ast.walk(scope):  # bindings of params and of its groups
        if not isinstance(node, ast.Assign):
            continue
        targets, values = node.targets[0], node.value
        pairs = (list(zip(targets.elts, values.elts, strict=True))
                 if isinstance(targets, ast.Tuple) and isinstance(values, ast.Tuple)
                 else [(targets, values)])
        for target, value in pairs:
            if isinstance(target, ast.Name) and (key := key_of(value)) is not None:
                bound[target.id] = key
        if (isinstance(targets, ast.Tuple) and isinstance(values, ast.Call)
                and getattr(values.func, "id", None) == "stage_setup"):
            group = values.args[1].value
            bound[targets.elts[0].id] = group
            reads.update((group, *STAGE_SETUP_READS))
    for node in ast.walk(scope):
        if isinstance(node, ast.Subscript):
            base = key_of(node.value)
            if base is None:
                continue
            if (key := key_of(node)) is not None and key.count(".") >= 1:
                reads.add(key)
            elif isinstance(node.slice, ast.Name) and node.slice.id in loop_values:
                reads.update(f"{base}.{v}".lstrip(".") for v in loop_values[node.slice.id])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) != "stage_setup":
            for arg in node.args:  # a group handed whole to a function
                if (key := key_of(arg)) and "." not in key:
                    reads.add(key)
    return reads


def covered(key: str, declared: list[str]) -> bool:
    return any(key == d or key.startswith(d + ".") for d in declared)


def group_covered(group: str, declared: list[str], others_own: set[str]) -> bool:
    """A group read whole is covered when each of its keys is declared or is another method's
    own key (the stage drops those: a method-only param reruns that method alone)."""
    values = (yaml.safe_load((REPO / "params.yaml").read_text()) or {}).get(group)
    if not isinstance(values, dict):
        return False
    return all(covered(f"{group}.{k}", declared) or f"{group}.{k}" in others_own for k in values)


def declared_per_item(stage: str) -> dict[str, tuple[list[str], set[str]]]:
    """Per foreach item (or the plain stage): its declared params, ${item.*} filled in, and the
    keys that other items declare as their own and this one does not."""
    body = stage_bodies()[stage]
    declared = [p for p in body.get("params") or [] if isinstance(p, str)]
    items = stage_items(stage)
    if not items:
        return {stage: (declared, set())}
    filled = {key: [fill_item(p, key, item) for p in declared] for key, item in items.items()}
    return {key: (mine, set().union(*filled.values()) - set(mine)) for key, mine in filled.items()}


def test_reads_are_found_through_groups_loops_and_stage_setup() -> None:
    stage_dir = REPO / "src/catdog/stages"
    assert {"data.test", "data.labeled", "data.val", "data.seed",
            "data.image_size"} <= params_read(stage_dir / "prepare.py")
    assert {"distill", "compute", "train.seed"} <= params_read(stage_dir / "distill.py")
    assert {"teacher.batch_size", "compute.device"} <= params_read(stage_dir / "teacher_logits.py")
    assert params_read(stage_dir / "featuremaps.py") == {"featuremaps.channels"}


@pytest.mark.parametrize("stage", sorted(stage_bodies()))
def test_every_params_key_a_stage_reads_is_declared(stage: str) -> None:
    body = stage_bodies()[stage]
    module = stage_module(body)
    reads = params_read(module_file(module))
    assert reads, f"no params read found in {module}: the check would be vacuous"
    for item, (declared, others_own) in declared_per_item(stage).items():
        # another method's own key may be read behind a method check (finetune's backbone_lr)
        undeclared = sorted(k for k in reads if not covered(k, declared) and k not in others_own
                            and not group_covered(k, declared, others_own))
        assert not undeclared, f"stage {stage!r} ({item}) reads params it does not declare: {undeclared}"


def test_a_method_only_param_is_declared_by_that_method_alone() -> None:
    per_item = declared_per_item("finetune")
    owners = [item for item, (declared, _) in per_item.items() if "finetune.backbone_lr" in declared]
    assert owners == ["simclr"]
    assert all("finetune" not in declared for declared, _ in per_item.values())  # no whole group
