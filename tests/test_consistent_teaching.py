"""Consistent teaching at a fixed cost: stored crop boxes cut the crops the random crop draws,
the teacher_crops stage stores the teacher's logits of each box, and distill in `crops` mode
trains on one stored crop per image with that crop's own target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import committed_params, make_split

from catdog import distillation
from catdog.augment import crop_boxes01, crop_flip01, cut_boxes01
from catdog.cache import load_split, save_split, split_path
from catdog.models import load_model, student
from catdog.teachers import CROPS_FILE, Teacher, load_crops, load_teacher, save_teacher


def test_stored_boxes_cut_the_crops_that_the_random_crop_draws() -> None:
    images = torch.randint(0, 256, (5, 3, 48, 48), dtype=torch.uint8)
    drawn = crop_flip01(images, 32, torch.Generator().manual_seed(3), min_scale=0.35)
    boxes = crop_boxes01(5, torch.Generator().manual_seed(3), min_scale=0.35)
    assert torch.allclose(cut_boxes01(images, boxes, 32), drawn, atol=1e-5)
    # the same box cut at another side is the same crop, resampled
    small = cut_boxes01(images, boxes, 16)
    assert small.shape == (5, 3, 16, 16)


def test_boxes_are_fractions_of_the_side_with_at_least_min_scale_of_the_area() -> None:
    boxes = crop_boxes01(2000, torch.Generator().manual_seed(0), min_scale=0.35)
    x0, y0, w, h, flip = boxes.unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x0 + w <= 1 + 1e-6).all() and (y0 + h <= 1 + 1e-6).all()
    assert (w * h >= 0.35 - 1e-6).all()
    assert set(flip.tolist()) == {0.0, 1.0} and 0.4 < flip.mean() < 0.6


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_zip: Path) -> Path:
    params = committed_params()
    params["compute"].update({"device": "cpu", "precision": "fp32"})
    params["teacher"].update({"batch_size": 8})
    params["teacher_crops"].update({"crops": 3})
    params["distill"].update({"epochs": 1, "batch_size": 16, "image_size": 32, "teacher_mode": "crops"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    pool = make_split(shared_zip, 8, size=48, offset=300)
    for name, split in {"pool": pool, "labeled": make_split(shared_zip, 4, size=48, offset=400),
                        "val": make_split(shared_zip, 4, size=48, offset=500)}.items():
        save_split(split_path(name), split)
    teacher = Teacher("efficientnet_lite2", 64)
    torch.nn.init.normal_(teacher.head.weight, std=0.05, generator=torch.Generator().manual_seed(0))
    save_teacher("models/teacher.pt", teacher)  # a head that is not all zeros: distinct logits
    from catdog.stages import teacher_crops

    # the stage decodes the data.max_size pool from the prepared index; here it is the saved pool
    monkeypatch.setattr(teacher_crops, "read_index", lambda: None)
    monkeypatch.setattr(teacher_crops, "pool_rows", lambda *a: None)
    monkeypatch.setattr(teacher_crops, "rows_split", lambda *a: load_split("pool"))
    return tmp_path


def test_the_stage_stores_the_teachers_logits_of_each_stored_crop(workspace: Path) -> None:
    from catdog.stages import teacher_crops

    teacher_crops.main([])
    labeled, pool = load_split("labeled"), load_split("pool")
    files = labeled.files + pool.files
    boxes, logits, energies = load_crops(CROPS_FILE, files)
    assert boxes.shape == (24, 3, 5) and logits.shape == (24, 3, 2)
    assert energies == []  # teacher_crops.attention false: logits only
    teacher = load_teacher("models/teacher.pt")
    images = torch.cat([labeled.images, pool.images])
    for i, k in ((0, 0), (7, 2), (23, 1)):  # a labeled image, pool images
        with torch.no_grad():
            alone, _ = teacher.forward01_with_map(cut_boxes01(images[i:i + 1], boxes[i, k:k + 1], 64))
        assert torch.allclose(alone[0], logits[i, k], atol=1e-4)
    assert logits.abs().max() > 0.1
    assert not torch.allclose(logits[7, 0], logits[7, 2])  # another crop, another target
    assert json.loads((workspace / "metrics/time/teacher_crops.json").read_text())["seconds"] > 0


def test_no_crops_writes_an_empty_file_without_the_teacher(workspace: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from catdog.stages import teacher_crops

    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["teacher_crops"]["crops"] = 0
    params["distill"]["teacher_mode"] = "cached"
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setattr(teacher_crops, "load_teacher", lambda *a: pytest.fail("teacher loaded"))
    teacher_crops.main([])
    with pytest.raises(SystemExit, match="holds no crops"):
        load_crops(CROPS_FILE, load_split("pool").files)


def test_load_crops_names_the_images_it_lacks(workspace: Path) -> None:
    from catdog.stages import teacher_crops

    teacher_crops.main([])
    with pytest.raises(SystemExit, match="lacks the crops of 1 of 2 images"):
        load_crops(CROPS_FILE, [load_split("pool").files[0], "Cat/unknown.jpg"])


def test_distill_trains_on_stored_crops_with_their_own_targets(workspace: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from catdog.stages import distill, teacher_crops

    teacher_crops.main([])
    monkeypatch.setattr(distill, "load_teacher", lambda *a: pytest.fail("teacher loaded"))
    distill.main(["scratch"])
    assert load_model("models/kd.pt")[1]["method"] == "kd"


def test_each_image_learns_one_of_its_own_stored_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    n, k = 6, 4
    batch = torch.randint(0, 256, (n, 3, 40, 40), dtype=torch.uint8)
    boxes = crop_boxes01(n * k, torch.Generator().manual_seed(1)).view(n, k, 5)
    stored_logits = torch.arange(n * k * 2, dtype=torch.float32).view(n, k, 2)  # all distinct
    seen = []
    real = distillation.kd_loss
    monkeypatch.setattr(distillation, "kd_loss",
                        lambda s, t, *a, **kw: seen.append(t) or real(s, t, *a, **kw))
    cfg = {"image_size": 32, "temperature": 4.0, "alpha": 1.0, "label_smoothing": 0.0}
    generator = torch.Generator().manual_seed(0)
    net = student()
    for _ in range(8):
        distillation.distill_loss(net, None, batch, torch.full((n,), -1), None, cfg, generator,
                                  stored=(boxes, stored_logits, []))
    picks = set()
    for targets in seen:
        for i in range(n):
            match = (stored_logits[i] == targets[i]).all(dim=1).nonzero()
            assert len(match) == 1, f"image {i}: target is none of its own stored crops' logits"
            picks.add(int(match[0]))
    assert picks == set(range(k))  # every stored crop gets drawn


def test_stored_attention_maps_are_the_teachers_energy_of_each_crop(workspace: Path) -> None:
    from catdog.attention import STRIDES, energy_map, maps_by_stride
    from catdog.stages import teacher_crops

    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["teacher_crops"]["attention"] = True
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    teacher_crops.main([])
    labeled, pool = load_split("labeled"), load_split("pool")
    boxes, _, energies = load_crops(CROPS_FILE, labeled.files + pool.files)
    assert [e.shape for e in energies] == [(24, 3, 64 // s, 64 // s) for s in STRIDES]
    teacher = load_teacher("models/teacher.pt")
    with torch.no_grad():
        _, _, blocks = teacher.forward01_with_maps(cut_boxes01(pool.images[:1], boxes[8, 1:2], 64))
    for stored, block in zip(energies, maps_by_stride(blocks, 64, STRIDES), strict=True):
        assert torch.allclose(stored[8, 1].float(), energy_map(block)[0, 0], rtol=1e-2, atol=1e-3)


def test_attention_transfer_from_stored_maps_adds_its_term(monkeypatch: pytest.MonkeyPatch) -> None:
    from catdog.attention import STUDENT_BLOCKS, energy_loss

    n = 4
    batch = torch.randint(0, 256, (n, 3, 40, 40), dtype=torch.uint8)
    boxes = crop_boxes01(n, torch.Generator().manual_seed(1)).view(n, 1, 5)
    logits = torch.randn(n, 1, 2, generator=torch.Generator().manual_seed(2))
    energies = [torch.rand(n, 1, side, side, generator=torch.Generator().manual_seed(side))
                for side in (8, 4, 2)]
    cfg = {"image_size": 32, "temperature": 4.0, "alpha": 1.0, "label_smoothing": 0.0}
    net = student().eval()  # eval: BatchNorm uses its running statistics, so both calls agree
    plain = distillation.distill_loss(net, None, batch, torch.full((n,), -1), None, cfg,
                                      torch.Generator().manual_seed(0), stored=(boxes, logits, energies))
    with_at = distillation.distill_loss(net, None, batch, torch.full((n,), -1), None,
                                        cfg | {"attention_weight": 100.0}, torch.Generator().manual_seed(0),
                                        stored=(boxes, logits, energies))
    crops = cut_boxes01(batch, boxes[:, 0], 32)
    _, _, taps = distillation.student_outputs(net, distillation.normalize(crops), STUDENT_BLOCKS)
    expected = 100.0 * energy_loss(taps, [e[:, 0].unsqueeze(1) for e in energies])
    assert (with_at - plain).item() == pytest.approx(expected.item(), rel=1e-4)
    assert expected.item() > 0


def test_distill_in_crops_mode_with_attention_runs_without_the_teacher(
        workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from catdog.stages import distill, teacher_crops

    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["teacher_crops"]["attention"] = True
    params["distill"]["attention_weight"] = 500.0
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    teacher_crops.main([])
    monkeypatch.setattr(distill, "load_teacher", lambda *a: pytest.fail("teacher loaded"))
    distill.main(["scratch"])
    assert load_model("models/kd.pt")[1]["method"] == "kd"


def test_attention_without_crops_stores_the_teachers_maps_of_each_whole_image(
        workspace: Path) -> None:
    from catdog.attention import STRIDES, energy_map, maps_by_stride
    from catdog.stages import teacher_crops
    from catdog.teachers import load_image_energies

    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["teacher_crops"].update({"crops": 0, "attention": True})
    params["distill"].update({"teacher_mode": "cached", "attention_weight": 500.0})
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    teacher_crops.main([])
    labeled, pool = load_split("labeled"), load_split("pool")
    maps = load_image_energies(CROPS_FILE, labeled.files + pool.files)
    assert [m.shape for m in maps] == [(len(labeled) + len(pool), 64 // s, 64 // s) for s in STRIDES]
    with pytest.raises(SystemExit, match="holds no crops"):  # crops mode still needs crops
        load_crops(CROPS_FILE, pool.files)
    teacher = load_teacher("models/teacher.pt")
    whole = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]])
    with torch.no_grad():
        _, _, blocks = teacher.forward01_with_maps(cut_boxes01(pool.images[2:3], whole, 64))
    for stored, block in zip(maps, maps_by_stride(blocks, 64, STRIDES), strict=True):
        assert torch.allclose(stored[len(labeled) + 2].float(), energy_map(block)[0, 0], rtol=1e-2, atol=1e-3)


def test_cached_attention_transfer_cuts_the_whole_image_maps_to_the_students_crop() -> None:
    from catdog.attention import STUDENT_BLOCKS, energy_loss
    from catdog.augment import crop_maps

    n = 4
    batch = torch.randint(0, 256, (n, 3, 40, 40), dtype=torch.uint8)
    targets = torch.randn(n, 2, generator=torch.Generator().manual_seed(2))
    maps = [torch.rand(n, side, side, generator=torch.Generator().manual_seed(side)) for side in (8, 4, 2)]
    cfg = {"image_size": 32, "temperature": 4.0, "alpha": 1.0, "label_smoothing": 0.0}
    net = student().eval()  # eval: BatchNorm uses its running statistics, so both calls agree
    plain = distillation.distill_loss(net, None, batch, torch.full((n,), -1), targets, cfg,
                                      torch.Generator().manual_seed(0), image_energies=maps)
    with_at = distillation.distill_loss(net, None, batch, torch.full((n,), -1), targets,
                                        cfg | {"attention_weight": 100.0}, torch.Generator().manual_seed(0),
                                        image_energies=maps)
    # the student's crop: crop_flip01's draw, which crop_boxes01 repeats as boxes
    boxes = crop_boxes01(n, torch.Generator().manual_seed(0), min_scale=distillation.MIN_SCALE)
    crops = cut_boxes01(batch, boxes, 32)
    assert torch.allclose(crops, crop_flip01(batch, 32, torch.Generator().manual_seed(0),
                                             min_scale=distillation.MIN_SCALE), atol=1e-5)
    _, _, taps = distillation.student_outputs(net, distillation.normalize(crops), STUDENT_BLOCKS)
    cut = [crop_maps(m, boxes, t.shape[-1]) for m, t in zip(maps, taps, strict=True)]
    expected = 100.0 * energy_loss(taps, cut)
    assert (with_at - plain).item() == pytest.approx(expected.item(), rel=1e-4)
    assert expected.item() > 0


def test_features_store_the_teachers_last_feature_map_of_each_whole_image(workspace: Path) -> None:
    from catdog.stages import teacher_crops
    from catdog.teachers import load_image_energies, load_image_features

    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["teacher_crops"].update({"crops": 0, "attention": False, "features": True})
    params["distill"]["teacher_mode"] = "cached"
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    teacher_crops.main([])
    labeled, pool = load_split("labeled"), load_split("pool")
    features = load_image_features(CROPS_FILE, labeled.files + pool.files)
    teacher = load_teacher("models/teacher.pt")
    assert features.dtype == torch.float16
    assert features.shape == (len(labeled) + len(pool), teacher.dim, 2, 2)  # 64 px / 32
    with pytest.raises(SystemExit, match="holds no attention maps"):  # features only
        load_image_energies(CROPS_FILE, pool.files)
    whole = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]])
    with torch.no_grad():
        _, fmap = teacher.forward01_with_map(cut_boxes01(pool.images[3:4], whole, 64))
    assert torch.allclose(features[len(labeled) + 3].float(), fmap[0], rtol=1e-2, atol=1e-2)


def test_cached_fitnets_cuts_the_whole_image_feature_map_to_the_students_crop() -> None:
    from catdog.augment import crop_maps
    from catdog.kd_loss import feature_loss
    from catdog.models import FEATURE_DIM

    n, dim = 4, 6
    batch = torch.randint(0, 256, (n, 3, 40, 40), dtype=torch.uint8)
    targets = torch.randn(n, 2, generator=torch.Generator().manual_seed(2))
    features = torch.randn(n, dim, 7, 7, generator=torch.Generator().manual_seed(3))
    adapter = torch.nn.Conv2d(FEATURE_DIM, dim, 1)
    cfg = {"image_size": 64, "temperature": 4.0, "alpha": 1.0, "label_smoothing": 0.0}
    net = student().eval()  # eval: BatchNorm uses its running statistics, so both calls agree
    plain = distillation.distill_loss(net, None, batch, torch.full((n,), -1), targets, cfg,
                                      torch.Generator().manual_seed(0))
    hinted = distillation.distill_loss(net, None, batch, torch.full((n,), -1), targets,
                                       cfg | {"feature_weight": 3.0}, torch.Generator().manual_seed(0),
                                       adapter, image_features=features)
    # the student's crop: crop_flip01's draw, which crop_boxes01 repeats as boxes
    boxes = crop_boxes01(n, torch.Generator().manual_seed(0), min_scale=distillation.MIN_SCALE)
    _, fmap, _ = distillation.student_outputs(net, distillation.normalize(cut_boxes01(batch, boxes, 64)))
    hint = adapter(fmap)
    assert hint.shape[-2:] == (2, 2)
    expected = 3.0 * feature_loss(hint, crop_maps(features, boxes, 2))
    assert (hinted - plain).item() == pytest.approx(expected.item(), rel=1e-4)
    assert expected.item() > 0
    # the hint reads the crop's region: the whole image's map, pooled, gives another loss
    assert not torch.isclose(expected, 3.0 * feature_loss(hint, features))


@pytest.mark.parametrize(("stored", "weight", "value", "missing"), [
    ("attention", "attention_weight", 500.0, "holds no attention maps of whole images"),
    ("features", "feature_weight", 1.0, "holds no feature maps of whole images"),
])
def test_distill_in_cached_mode_with_stored_maps_runs_without_the_teacher(
        workspace: Path, monkeypatch: pytest.MonkeyPatch, stored: str, weight: str, value: float,
        missing: str) -> None:
    """Attention transfer and the FitNets hint read the whole images' stored maps: no teacher,
    and a clear error when the crops file lacks them."""
    from catdog.stages import distill, teacher_crops
    from catdog.teachers import LOGITS_FILE, save_logits

    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["teacher_crops"].update({"crops": 0, "attention": stored == "features", "features": False})
    params["distill"].update({"teacher_mode": "cached"})
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    files = load_split("labeled").files + load_split("pool").files
    save_logits(LOGITS_FILE, files, torch.randn(len(files), 2), "fp32")
    teacher_crops.main([])  # a file without the maps this run needs
    params["teacher_crops"][stored] = True
    params["distill"][weight] = value
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setattr(distill, "load_teacher", lambda *a: pytest.fail("teacher loaded"))
    with pytest.raises(SystemExit, match=missing):
        distill.main(["scratch"])  # a stale crops file: a clear error, before any training
    teacher_crops.main([])
    distill.main(["scratch"])
    assert load_model("models/kd.pt")[1]["method"] == "kd"
