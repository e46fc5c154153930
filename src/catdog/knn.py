"""kNN accuracy on val with the labeled set as memory: the SimCLR training monitor."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def knn_accuracy(bank: torch.Tensor, bank_labels: torch.Tensor, query: torch.Tensor,
                 query_labels: torch.Tensor, k: int, temperature: float = 0.1) -> float:
    """Weighted cosine-similarity kNN vote (as in InstDisc / lightly's benchmarks)."""
    bank, query = F.normalize(bank.float(), dim=1), F.normalize(query.float(), dim=1)
    sim = query @ bank.T
    k = min(k, len(bank))
    top_sim, top_idx = sim.topk(k, dim=1)
    weights = (top_sim / temperature).exp()
    votes = torch.zeros(len(query), 2, device=query.device)
    votes.scatter_add_(1, bank_labels.to(query.device)[top_idx], weights)
    return (votes.argmax(1) == query_labels.to(query.device)).float().mean().item()
