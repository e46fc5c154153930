"""Hinton KD loss: a hand-computed value, its alpha limits, the T^2 scaling and the label mask."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from catdog.kd_loss import hard_loss, kd_loss, soft_loss


def softmax(row: list[float], t: float = 1.0) -> list[float]:
    exps = [math.exp(v / t) for v in row]
    return [e / sum(exps) for e in exps]


def hand_kd(student, teacher, labels, mask, t, alpha) -> float:
    """The KD formula written out with plain math, one sample at a time."""
    kl = 0.0
    for s_row, t_row in zip(student, teacher, strict=True):
        p_s, p_t = softmax(s_row, t), softmax(t_row, t)
        kl += sum(pt * (math.log(pt) - math.log(ps)) for pt, ps in zip(p_t, p_s, strict=True))
    kl /= len(student)
    ce = [-math.log(softmax(row)[y]) for row, y, m in zip(student, labels, mask, strict=True) if m]
    hard = sum(ce) / len(ce) if ce else 0.0
    return alpha * t * t * kl + (1 - alpha) * hard


STUDENT = [[1.0, 2.0], [0.5, -0.5]]
TEACHER = [[2.0, 0.0], [1.0, 1.0]]
LABELS = [1, 0]


def tensors():
    return torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS)


def test_matches_hand_computed_value() -> None:
    s, t, y = tensors()
    got = kd_loss(s, t, y, temperature=2.0, alpha=0.7)
    want = hand_kd(STUDENT, TEACHER, LABELS, [True, True], 2.0, 0.7)
    assert got.item() == pytest.approx(want, rel=1e-5)
    # the same example, written out number by number
    p_s1, p_t1 = 1 / (1 + math.exp(0.5)), 1 / (1 + math.exp(-1.0))  # class-0 probs at T=2
    p_s2, p_t2 = 1 / (1 + math.exp(-0.5)), 0.5
    kl1 = p_t1 * math.log(p_t1 / p_s1) + (1 - p_t1) * math.log((1 - p_t1) / (1 - p_s1))
    kl2 = p_t2 * math.log(p_t2 / p_s2) + (1 - p_t2) * math.log((1 - p_t2) / (1 - p_s2))
    ce1, ce2 = math.log(1 + math.exp(-1.0)), math.log(1 + math.exp(-1.0))
    assert want == pytest.approx(0.7 * 4 * (kl1 + kl2) / 2 + 0.3 * (ce1 + ce2) / 2, rel=1e-12)


def test_alpha_zero_is_cross_entropy() -> None:
    s, t, y = tensors()
    got = kd_loss(s, t, y, temperature=3.0, alpha=0.0)
    assert got.item() == pytest.approx(F.cross_entropy(s, y).item(), rel=1e-6)
    assert got.item() == pytest.approx(hand_kd(STUDENT, TEACHER, LABELS, [1, 1], 3.0, 0.0))


def test_alpha_one_is_t_squared_kl() -> None:
    s, t, y = tensors()
    got = kd_loss(s, t, y, temperature=3.0, alpha=1.0)
    kl = F.kl_div(F.log_softmax(s / 3, 1), F.softmax(t / 3, 1), reduction="batchmean")
    assert got.item() == pytest.approx(9.0 * kl.item(), rel=1e-5)
    assert got.item() == pytest.approx(soft_loss(s, t, 3.0).item(), rel=1e-6)


def test_kl_is_zero_when_student_equals_teacher() -> None:
    logits = torch.randn(16, 2, generator=torch.Generator().manual_seed(0)) * 3
    assert soft_loss(logits, logits.clone(), 4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_loss(logits + 1.0, logits, 4.0).item() == pytest.approx(0.0, abs=1e-6)  # shift


def test_soft_gradient_matches_formula_and_t_squared_keeps_it_stable() -> None:
    gen = torch.Generator().manual_seed(1)
    teacher = torch.randn(8, 2, generator=gen) * 0.1
    student0 = teacher + torch.randn(8, 2, generator=gen) * 0.1  # near-equal logits
    grads = {}
    for t in (4.0, 8.0):
        student = student0.clone().requires_grad_(True)
        soft_loss(student, teacher, t).backward()
        grads[t] = student.grad
        # d/ds [T^2 KL] = T * (softmax(s/T) - softmax(t/T)) / N
        want = t * (F.softmax(student0 / t, 1) - F.softmax(teacher / t, 1)) / len(student0)
        torch.testing.assert_close(student.grad, want, rtol=1e-4, atol=1e-8)
    # with T^2 the gradient is ~ (s - t) / (K N) whatever T; the plain KL one would shrink by 4x
    ratio = grads[8.0].norm() / grads[4.0].norm()
    assert 0.95 < ratio.item() < 1.05
    expected = (student0 - teacher) - (student0 - teacher).mean(1, keepdim=True)
    torch.testing.assert_close(grads[8.0], expected / (2 * len(student0)), rtol=0.02, atol=1e-5)


def test_labeled_mask_excludes_unlabeled_samples() -> None:
    s, t, _ = tensors()
    labels = torch.tensor([1, -1])  # second sample unlabeled: its label is junk
    mask = torch.tensor([True, False])
    got = kd_loss(s, t, labels, temperature=2.0, alpha=0.4, labeled_mask=mask)
    want = hand_kd(STUDENT, TEACHER, [1, 0], [True, False], 2.0, 0.4)
    assert got.item() == pytest.approx(want, rel=1e-5)
    assert hard_loss(s, labels, mask).item() == pytest.approx(math.log(1 + math.exp(-1.0)))
    # the unlabeled sample's hard-term gradient is zero
    student = s.clone().requires_grad_(True)
    hard_loss(student, labels, mask).backward()
    assert student.grad[1].abs().max().item() == 0.0
    assert student.grad[0].abs().max().item() > 0.0


def test_no_labeled_sample_gives_zero_hard_term() -> None:
    s, t, _ = tensors()
    mask = torch.tensor([False, False])
    labels = torch.tensor([-1, -1])
    assert hard_loss(s, labels, mask).item() == 0.0
    got = kd_loss(s, t, labels, temperature=2.0, alpha=0.5, labeled_mask=mask)
    assert got.item() == pytest.approx(0.5 * soft_loss(s, t, 2.0).item(), rel=1e-6)


def test_rejects_bad_arguments() -> None:
    s, t, y = tensors()
    with pytest.raises(ValueError, match="alpha"):
        kd_loss(s, t, y, temperature=2.0, alpha=1.5)
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(s, t, y, temperature=0.0, alpha=0.5)
    with pytest.raises(ValueError, match="shape"):
        kd_loss(s, t[:, :1], y, temperature=2.0, alpha=0.5)


def test_feature_loss_by_hand_and_its_invariances() -> None:
    from catdog.kd_loss import feature_loss

    # One sample, 2 channels, 1x1 student map vs a 2x2 teacher map pooled to 1x1.
    student = torch.tensor([[[[3.0]], [[4.0]]]])  # unit vector (0.6, 0.8)
    teacher = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]]])  # pooled: (1, 0)
    expected = (0.6 - 1.0) ** 2 + (0.8 - 0.0) ** 2
    assert feature_loss(student, teacher).item() == pytest.approx(expected)
    assert feature_loss(5.0 * student, teacher).item() == pytest.approx(expected)  # scale-free
    same = torch.randn(2, 4, 3, 3)
    assert feature_loss(same, same).item() == pytest.approx(0.0, abs=1e-6)
    assert feature_loss(student, -teacher).item() == pytest.approx((0.6 + 1) ** 2 + 0.8**2)
    with pytest.raises(ValueError, match="adapter missing"):
        feature_loss(torch.randn(1, 3, 2, 2), teacher)


def test_label_smoothing_softens_the_hard_targets_of_labeled_samples_only() -> None:
    s = torch.tensor([[2.0, -1.0], [0.3, 0.1], [5.0, -5.0]])
    labels = torch.tensor([0, 1, -1])
    mask = labels >= 0
    eps = 0.2
    # (1 - eps) one-hot + eps / K over the two labeled rows, written out
    expected = 0.0
    for row, y in zip(s[:2].tolist(), labels[:2].tolist(), strict=True):
        logp = [math.log(p) for p in softmax(row)]
        expected += -((1 - eps) * logp[y] + eps / 2 * sum(logp))
    expected /= 2
    assert hard_loss(s, labels, mask, label_smoothing=eps).item() == pytest.approx(expected, rel=1e-5)
    plain = hard_loss(s, labels, mask).item()
    assert plain != pytest.approx(expected)  # the option changes the loss
    t = torch.zeros_like(s)
    got = kd_loss(s, t, labels, temperature=2.0, alpha=0.5, labeled_mask=mask, label_smoothing=eps)
    assert got.item() == pytest.approx(0.5 * soft_loss(s, t, 2.0).item() + 0.5 * expected, rel=1e-5)
    with pytest.raises(ValueError, match="label_smoothing"):
        kd_loss(s, t, labels, temperature=2.0, alpha=0.5, labeled_mask=mask, label_smoothing=1.0)
