"""`dvc plots show` with the committed offline template renders real plots with no network."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catdog.plots_template import TEMPLATE_FILE, build_template

REPO = Path(__file__).resolve().parents[1]
WINDOW = (1200, 900)


def run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"


def dvc(*args: str, cwd: Path) -> None:
    run([sys.executable, "-m", "dvc", *args], cwd)


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: apt-get update && apt-get install -y chromium")
    return exe


def screenshot(html: Path, png: Path, profile: Path) -> np.ndarray:
    """Headless Chromium screenshot of `html` with every host name unresolvable (no network)."""
    cmd = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}", f"--screenshot={png}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}", "--virtual-time-budget=5000",
        html.resolve().as_uri(),
    ]  # fmt: skip
    subprocess.run(cmd, capture_output=True, timeout=120)
    assert png.is_file(), "chromium wrote no screenshot"
    return np.asarray(Image.open(png).convert("RGB")).astype(int)


def colored(rgb: np.ndarray) -> np.ndarray:
    """Mask of saturated pixels: plotted lines and heat-map cells, not black text or white page."""
    return (rgb.max(axis=2) - rgb.min(axis=2)) > 40


def make_plot_repo(root: Path) -> None:
    """A git + dvc repo with a loss curve (JSON) and a confusion matrix (CSV) as top-level plots."""
    run(["git", "init", "-q"], root)
    dvc("init", "-q", cwd=root)
    (root / "plots").mkdir()
    loss = [{"epoch": i, "loss": 1.0 / (i + 1)} for i in range(20)]
    (root / "plots" / "loss.json").write_text(json.dumps(loss))
    with open(root / "plots" / "confusion.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["actual", "predicted"])
        for actual, predicted, n in [("Cat", "Cat", 40), ("Cat", "Dog", 10),
                                     ("Dog", "Dog", 35), ("Dog", "Cat", 15)]:  # fmt: skip
            writer.writerows([[actual, predicted]] * n)
    (root / "dvc.yaml").write_text(
        "plots:\n"
        "  - plots/loss.json:\n      x: epoch\n      y: loss\n"
        "  - plots/confusion.csv:\n      template: confusion\n      x: actual\n      y: predicted\n"
    )


def test_template_keeps_dvc_placeholders_and_drops_cdn_scripts() -> None:
    page = build_template("window.vegaEmbed = function () {};")
    assert "{plot_divs}" in page and "{scripts}" not in page
    with pytest.raises(ValueError, match="plot_divs"):
        build_template("var s = '{plot_divs}';")


def test_plots_show_renders_offline(tmp_path: Path) -> None:
    template = REPO / TEMPLATE_FILE
    assert template.is_file(), f"{template} missing: run python -m catdog.plots_template"
    repo = tmp_path / "repo"
    repo.mkdir()
    make_plot_repo(repo)
    dvc("plots", "show", "--out", "cdn", cwd=repo)  # DVC's default page, before the config
    shutil.copy(template, repo / ".dvc" / "plots_template.html")
    dvc("config", "plots.html_template", "plots_template.html", cwd=repo)
    dvc("plots", "show", "--out", "offline", cwd=repo)

    html = (repo / "offline" / "index.html").read_text()
    script_srcs = re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']?([^\"' >]+)", html, re.I)
    assert not [s for s in script_srcs if s.startswith(("http://", "https://", "//"))]
    assert "cdn.jsdelivr.net" not in html and "window.vegaEmbed" in html

    # Control: DVC's default page (vega from the CDN) must be blank here, or the check is vacuous.
    cdn_html = (repo / "cdn" / "index.html").read_text()
    assert "cdn.jsdelivr.net" in cdn_html
    blank = screenshot(repo / "cdn" / "index.html", tmp_path / "cdn.png", tmp_path / "p1")
    assert colored(blank).sum() < 100

    shot = screenshot(repo / "offline" / "index.html", tmp_path / "offline.png", tmp_path / "p2")
    assert (shot.min(axis=2) < 200).sum() > 5_000, "page is blank: the vega bundle did not render"
    mask = colored(shot)
    half = WINDOW[0] // 2
    # The loss curve (one coloured line, left) and the confusion heat map (filled cells, right).
    assert mask[:, :half].sum() > 2_000, "no plotted loss line"
    assert mask[:, half:].sum() > 40_000, "no confusion-matrix cells"


def make_method_plots_repo(root: Path, methods: tuple[str, ...]) -> None:
    """A repo with the project's plot templates and, per method, a loss curve and a confusion
    CSV laid out as the pipeline writes them, plotted as dvc.yaml plots them."""
    run(["git", "init", "-q"], root)
    dvc("init", "-q", cwd=root)
    shutil.copytree(REPO / ".dvc" / "plots", root / ".dvc" / "plots")
    for i, method in enumerate(methods):
        curve = root / f"dvclive/distill-{method}/plots/metrics/train"
        curve.mkdir(parents=True)
        rows = "".join(f"{s}\t{(i + 1) / (s + 1)}\n" for s in range(15))
        (curve / "loss.tsv").write_text("step\tloss\n" + rows)
        (root / f"plots/{method}").mkdir(parents=True)
        pairs = [("Cat", "Cat")] * (30 + 5 * i) + [("Cat", "Dog")] * 10 + [("Dog", "Dog")] * 30
        (root / f"plots/{method}/confusion.csv").write_text(
            "actual,predicted\n" + "".join(f"{a},{p}\n" for a, p in pairs))
    curves = "".join(f"        dvclive/distill-{m}/plots/metrics/train/loss.tsv: loss\n" for m in methods)
    matrices = "".join(f"        plots/{m}/confusion.csv: actual\n" for m in methods)
    (root / "dvc.yaml").write_text(
        "plots:\n  - Loss:\n      template: by_method\n      x: step\n      y:\n" + curves
        + "  - Confusion:\n      template: confusion_grid\n      x: predicted\n      y:\n" + matrices)


def hues(rgb: np.ndarray) -> set[int]:
    """Hue bins (of 24) that hold at least 150 saturated pixels."""
    mask = colored(rgb)
    r, g, b = (rgb[..., i][mask] / 255.0 for i in range(3))
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    delta = np.where(mx - mn == 0, 1, mx - mn)
    hue = np.select([mx == r, mx == g], [((g - b) / delta) % 6, (b - r) / delta + 2],
                    (r - g) / delta + 4) / 6
    counts = np.bincount((hue * 24).astype(int) % 24, minlength=24)
    return {i for i, n in enumerate(counts) if n >= 150}


def test_curves_take_one_colour_per_method_and_confusions_sit_side_by_side(tmp_path: Path) -> None:
    methods = ("kd", "scratch", "simclr")
    repo = tmp_path / "repo"
    repo.mkdir()
    make_method_plots_repo(repo, methods)
    done = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--json"], cwd=repo,
                          capture_output=True, text=True, timeout=120)
    specs = {name: entries[0]["content"] for name, entries in json.loads(done.stdout)["data"].items()}
    color = specs["Loss"]["encoding"]["color"]
    assert color["field"] == "method" and color["legend"]["labelLimit"] >= 300
    names = {v["filename"].split("/")[0] for v in specs["Loss"]["data"]["values"]}
    assert names == {f"distill-{m}" for m in methods}  # what the legend shows, one per colour
    assert specs["Confusion"]["columns"] == 4

    shutil.copy(REPO / TEMPLATE_FILE, repo / ".dvc" / "plots_template.html")
    dvc("config", "plots.html_template", "plots_template.html", cwd=repo)
    shots = {}
    for plot in ("Loss", "Confusion"):  # each plot alone on its page
        dvc("plots", "show", plot, "--out", plot, cwd=repo)
        shots[plot] = screenshot(repo / plot / "index.html", tmp_path / f"{plot}.png",
                                 tmp_path / f"profile-{plot}")
    # Three methods' curves in (at least) three hues: told apart by colour, not dash style.
    assert len(hues(shots["Loss"])) >= 3, f"curve hues {sorted(hues(shots['Loss']))}"
    # The three matrices sit in one row: the grid is wider than tall.
    cells = colored(shots["Confusion"])
    ys, xs = np.flatnonzero(cells.any(axis=1)), np.flatnonzero(cells.any(axis=0))
    width, height = np.ptp(xs), np.ptp(ys)
    assert width > 2 * height, f"matrices span {width} x {height} px"
