"""Stage `teacher_score`: score the fitted teacher on the test split.

Kept apart from the `teacher` stage so that no training stage depends on the test split, not
even through the teacher file (tests/test_leakage.py checks the pipeline graph). Writes
  metrics/teacher.json           test metrics + zero_shot_accuracy (the ImageNet classifier
                                 alone), and the teacher stage's val_accuracy, C and dtype
  plots/teacher/confusion.csv    one row per test image: actual, predicted
  plots/teacher/reliability.csv, corruptions.csv and the metrics ece, corruption_accuracy: the
                                 students' calibration and robustness scores (catdog.robustness)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from catdog.atomic import save_json, save_text
from catdog.cache import load_split
from catdog.device import pick_device
from catdog.metrics import classification_metrics, confusion_csv
from catdog.params import load_or_exit
from catdog.robustness import score_robustness
from catdog.stage_time import StageClock
from catdog.teachers import (
    TEACHER_FILE,
    TEACHER_INFO,
    batched,
    choose_teacher_precision,
    dog_prob_from_imagenet,
    load_teacher,
)

METRICS_FILE = "metrics/teacher.json"
PLOTS_DIR = Path("plots/teacher")
CONFUSION_FILE = PLOTS_DIR / "confusion.csv"


def main() -> None:
    clock = StageClock("teacher_score")
    params = load_or_exit()
    compute = params["compute"]
    device = pick_device(compute["device"], compute["threads"])
    teacher = load_teacher(TEACHER_FILE, device)
    fitted = json.loads(TEACHER_INFO.read_text()) if TEACHER_INFO.is_file() else {}
    test = load_split("test")
    if len(set(test.labels.tolist())) < 2:
        raise SystemExit("error: the test split needs both classes to score the teacher")
    precision = choose_teacher_precision(teacher, compute["precision"], device)
    feats = batched(teacher.embed, test.images, params["teacher"]["batch_size"], desc="teacher test")
    with torch.inference_mode():
        feats = feats.to(device)
        prob_dog = teacher.head(feats).softmax(dim=1)[:, 1].float().cpu().numpy()
        zero_shot = dog_prob_from_imagenet(teacher.imagenet(feats)).cpu().numpy()
    labels = test.labels.numpy()
    metrics = classification_metrics(labels, prob_dog)
    metrics["zero_shot_accuracy"] = float(((zero_shot >= 0.5) == labels).mean())
    batch = params["teacher"]["batch_size"]

    def prob_dog_of(images: torch.Tensor) -> np.ndarray:
        logits = batched(teacher, images, batch)
        return logits.float().softmax(dim=1)[:, 1].numpy()

    n_corrupt = min(params["evaluate"]["corruption_images"], len(test))
    metrics |= score_robustness(PLOTS_DIR, labels, prob_dog, prob_dog_of, test.images, n_corrupt,
                                params["evaluate"]["corruption_seed"])
    metrics |= {k: fitted[k] for k in ("val_accuracy",) if k in fitted}  # C, precision: models/teacher.json
    save_json(METRICS_FILE, metrics)
    save_text(CONFUSION_FILE, confusion_csv(labels, prob_dog))
    print(f"teacher_score: test accuracy {metrics['accuracy']:.4f} "
          f"(zero-shot {metrics['zero_shot_accuracy']:.4f}) on {len(labels)} images, {precision}")
    clock.save()


if __name__ == "__main__":
    main()
