"""catdog-predict on real photos, on bad inputs and on model files of another architecture."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from test_evaluate import fitted_student
from torchvision.models import resnet18

from catdog.images import decode
from catdog.models import load_model, save_model
from catdog.predict import PRECISIONS, dog_probabilities, inference_bf16, main

IMAGE_SIZE = 48  # side the test model "was trained at"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory, tiny_split) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.pt"
    save_model(path, fitted_student(tiny_split, IMAGE_SIZE), method="m", image_size=IMAGE_SIZE)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, shared_zip: Path) -> Path:
    """photos/cat/{0,1}.jpg, photos/dog/{0,1}.jpg and photos/dog/more/2.jpg, real JPEGs."""
    root = tmp_path_factory.mktemp("photos")
    with zipfile.ZipFile(shared_zip) as zf:
        for cls, n, rel in [("Cat", 0, "cat/0.jpg"), ("Cat", 1, "cat/1.jpg"),
                            ("Dog", 0, "dog/0.jpg"), ("Dog", 1, "dog/1.jpg"),
                            ("Dog", 2, "dog/more/2.jpg")]:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(zf.read(f"PetImages/{cls}/{n}.jpg"))
    (root / "notes.txt").write_text("not an image, and not named like one: ignored in folders\n")
    return root


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory, photos: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    text = root / "x.jpg"
    text.write_text("hello, I am text\n")
    truncated = root / "truncated.jpg"
    data = (photos / "cat" / "0.jpg").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    return {"missing": root / "missing.jpg", "text": text, "truncated": truncated}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_folder_is_searched_recursively_and_csv_written(
    model_file: Path, photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out_csv = tmp_path / "out" / "pred.csv"
    assert main([str(model_file), str(photos), "--csv", str(out_csv)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = [line.split("\t") for line in captured.out.splitlines()]
    files = sorted(str(p) for p in photos.rglob("*.jpg"))
    assert [line[0] for line in lines] == files
    assert {line[1] for line in lines} == {"Cat", "Dog"}  # the fitted model says both
    rows = read_csv(out_csv)
    assert [r["path"] for r in rows] == files
    # probabilities agree with the network run on the same decoded images
    images = torch.from_numpy(np.stack([decode(f, IMAGE_SIZE) for f in files])).permute(0, 3, 1, 2)
    expected = dog_probabilities(load_model(model_file)[0], images, IMAGE_SIZE, torch.device("cpu"))
    for (_, label, prob), row, p_dog in zip(lines, rows, expected, strict=True):
        assert label in ("Cat", "Dog") and row["label"] == label
        assert float(row["prob_cat"]) + float(row["prob_dog"]) == pytest.approx(1.0, abs=1e-5)
        assert float(row["prob_dog"]) == pytest.approx(p_dog, abs=1e-5)
        assert label == ("Dog" if p_dog >= 0.5 else "Cat")
        assert float(prob) == pytest.approx(max(p_dog, 1 - p_dog), abs=1e-4)
        assert 0.5 <= float(prob) <= 1.0


def test_precision_is_compute_precisions_on_cuda_and_fp32_on_the_cpu(
    model_file: Path, photos: Path, capsys: pytest.CaptureFixture
) -> None:
    assert {m: inference_bf16(m, torch.device("cuda")) for m in PRECISIONS} == {
        "auto": True, "fp32": False, "bf16": True}
    assert not any(inference_bf16(m, torch.device("cpu")) for m in PRECISIONS)
    outs = []
    for mode in PRECISIONS:
        assert main([str(model_file), str(photos), "--device", "cpu", "--precision", mode]) == 0
        captured = capsys.readouterr()
        assert captured.err == ""
        outs.append(captured.out)
    assert outs[0] == outs[1] == outs[2]  # the CPU scores in fp32 whatever is asked


def test_bad_inputs_are_skipped_with_one_line_each(
    model_file: Path, photos: Path, bad_files: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    good = photos / "dog" / "0.jpg"
    inputs = [bad_files["missing"], good, bad_files["text"], bad_files["truncated"]]
    assert main([str(model_file), *map(str, inputs)]) == 1
    captured = capsys.readouterr()
    assert [line.split("\t")[0] for line in captured.out.splitlines()] == [str(good)]
    err = captured.err.splitlines()
    assert len(err) == 3
    assert err[0] == f"error: {bad_files['missing']}: not found"
    assert err[1].startswith(f"error: {bad_files['text']}: not an image")
    assert err[2].startswith(f"error: {bad_files['truncated']}: corrupt image")


def test_nothing_predictable_exits_2(
    model_file: Path, bad_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main([str(model_file), str(bad_files["text"]), str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-2] == f"error: {tmp_path}: folder holds no image files"
    assert err[-1] == "error: no image could be classified"


@pytest.mark.parametrize("kind", ["resnet18", "random_bytes", "missing"])
def test_model_of_another_kind_is_one_clear_line(
    kind: str, photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = tmp_path / "other.pt"
    if kind == "resnet18":
        torch.save(resnet18(num_classes=2).state_dict(), model)
    elif kind == "random_bytes":
        model.write_bytes(np.random.default_rng(0).bytes(4096))
    assert main([str(model), str(photos)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(model) in err[0]


def test_command_line_exit_status_and_streams(
    repo_root: Path, model_file: Path, photos: Path, bad_files: dict[str, Path]
) -> None:
    env = {**os.environ, "PYTHONPATH": str(repo_root / "src")}
    good = photos / "cat" / "1.jpg"
    result = subprocess.run(
        [sys.executable, "-m", "catdog.predict",
         str(model_file), str(good), str(bad_files["text"])],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 1
    path, label, prob = result.stdout.strip().split("\t")
    assert path == str(good) and label in ("Cat", "Dog") and 0.5 <= float(prob) <= 1
    assert result.stderr.strip() == f"error: {bad_files['text']}: not an image"

    helped = subprocess.run([sys.executable, "-m", "catdog.predict", "--help"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert helped.returncode == 0 and "exit status" in helped.stdout
