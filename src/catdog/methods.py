"""The study's methods, in one place: what each is called, which stages make it, and what the
reference study reported for it. dvc.yaml's method lists (students, the finetune and distill
loops, plots, artifacts), the profiles, the report and the README table follow this registry;
tests/test_methods.py checks dvc.yaml against it. Adding a method is one entry here plus its code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    name: str  # key in dvc.yaml (models/<name>.pt, metrics/<name>.json)
    label: str  # short name in the report's tables
    title: str  # row name in the README's results table
    stages: tuple[str, ...]  # stages whose wall time makes the model (metrics/time/); last: its own
    trains: str | None  # dvc.yaml loop stage that writes models/<name>.pt (None: the teacher)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("teacher", "Teacher", "Teacher (EfficientNet-Lite2)", ("teacher_score", "teacher"), None),
    Method("simclr", "SimCLR", "SimCLR + fine-tune", ("pretrain", "finetune-simclr"), "finetune"),
    Method("simclr_imagenet", "SimCLR from ImageNet", "SimCLR from ImageNet + fine-tune",
           ("pretrain_imagenet", "finetune-simclr_imagenet"), "finetune"),
    Method("kd", "KD", "KD", ("teacher", "teacher_logits", "teacher_crops", "distill-kd"), "distill"),
    Method("scratch", "Scratch", "Scratch (random init)", ("finetune-scratch",), "finetune"),
    Method("imagenet", "ImageNet", "ImageNet + fine-tune", ("finetune-imagenet",), "finetune"),
    Method("imagenet_kd", "ImageNet + KD", "ImageNet + KD",
           ("teacher", "teacher_logits", "teacher_crops", "distill-imagenet_kd"), "distill"),
    Method("simclr_kd", "SimCLR + KD (SimCLRv2)", "SimCLR + KD",
           ("pretrain", "finetune-simclr", "teacher", "teacher_logits", "teacher_crops",
            "distill-simclr_kd"), "distill"),
)}
STUDENTS = tuple(name for name, m in METHODS.items() if m.trains)  # every model evaluate@ scores

# The reference study's own reported numbers (SimCLR vs KD into MobileNetV2 at 10k / 6k / 3k
# unlabeled images, 420 labeled, on a free cloud GPU), copied from its tables; not measured here.
REFERENCE_ACCURACY: dict[str, dict[int, float]] = {
    "simclr": {10000: 0.78, 6000: 0.76, 3000: 0.72},
    "kd": {10000: 0.92, 6000: 0.84, 3000: 0.75},
}
REFERENCE_EPOCHS: dict[str, dict[int, int]] = {
    "simclr": {10000: 62, 6000: 57, 3000: 59},
    "kd": {10000: 46, 6000: 35, 3000: 25},
}
