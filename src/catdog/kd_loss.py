"""Hinton knowledge distillation loss (Hinton, Vinyals & Dean, 2015).

    loss = alpha * T^2 * KL(p_t || p_s)  +  (1 - alpha) * CE(y, s)

    p_t = softmax(t / T), p_s = softmax(s / T)   teacher / student logits softened by temperature T
    KL(p_t || p_s) = sum_k p_t[k] * (log p_t[k] - log p_s[k]), averaged over ALL samples
    CE(y, s) = -log softmax(s)[y], averaged over the LABELED samples only (0 if there are none);
               with label smoothing eps the target is (1 - eps) one-hot + eps / K

The T^2 factor keeps the soft term's gradient, T * (p_s - p_t) per sample, of the same order
whatever T is, so alpha weighs the two terms comparably across temperatures.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
              temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)), mean over the batch.
    The teacher side is detached: no gradient flows into the teacher."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {list(student_logits.shape)} and teacher logits "
                         f"{list(teacher_logits.shape)} differ in shape")
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits.detach().float() / temperature, dim=1)
    kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
    return kl * temperature**2


def hard_loss(student_logits: torch.Tensor, labels: torch.Tensor,
              labeled_mask: torch.Tensor | None = None, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy averaged over the samples where labeled_mask is True (all if None).
    Labels of unlabeled samples are ignored (they may hold anything, e.g. -1); with no labeled
    sample in the batch the loss is 0 (and still differentiable, without a host sync)."""
    if labeled_mask is None:
        return F.cross_entropy(student_logits.float(), labels, label_smoothing=label_smoothing)
    mask = labeled_mask.to(torch.bool)
    safe_labels = torch.where(mask, labels, torch.zeros_like(labels))  # any valid class index
    per_sample = F.cross_entropy(student_logits.float(), safe_labels, reduction="none",
                                 label_smoothing=label_smoothing)
    weight = mask.to(per_sample.dtype)
    return (per_sample * weight).sum() / weight.sum().clamp(min=1.0)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *,
            temperature: float, alpha: float,
            labeled_mask: torch.Tensor | None = None, label_smoothing: float = 0.0) -> torch.Tensor:
    """alpha * soft_loss(T) + (1 - alpha) * hard_loss on the labeled samples (see module doc).

    student_logits, teacher_logits: [N, K]; labels: int64 [N]; labeled_mask: bool [N] or None
    (None = every sample is labeled); label_smoothing: of the hard term only. Returns a float32
    scalar.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    soft = soft_loss(student_logits, teacher_logits, temperature)
    hard = hard_loss(student_logits, labels, labeled_mask, label_smoothing)
    return alpha * soft + (1.0 - alpha) * hard


def feature_loss(student_map: torch.Tensor, teacher_map: torch.Tensor) -> torch.Tensor:
    """FitNets-style hint loss between an adapted student feature map [N, D, h, w] and the
    teacher's [N, D, H, W] of the same crop: the teacher map is average-pooled to h x w, both
    are L2-normalised over channels at every position, and the squared distance (in [0, 4]) is
    averaged over positions and samples. Normalising makes it independent of feature scale."""
    if student_map.shape[:2] != teacher_map.shape[:2]:
        raise ValueError(f"student map {list(student_map.shape)} and teacher map "
                         f"{list(teacher_map.shape)} differ in batch or channels (adapter missing?)")
    target = F.adaptive_avg_pool2d(teacher_map.detach().float(), student_map.shape[-2:])
    s = F.normalize(student_map.float(), dim=1)
    t = F.normalize(target, dim=1)
    return (s - t).pow(2).sum(dim=1).mean()
