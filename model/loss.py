"""The training objective of one supervision step (Eq. 14 of the paper, our reading).

Receives a StepOutput from GRAM.forward and the targets; hands on the scalar loss and float
metrics. CE(decoder(h_T), y) + beta * balanced KL (alpha * KL(sg(q)||p) + (1-alpha) * KL(q||sg(p)))
+ halting BCE + LPRM MSE (heads on detached features). Knows nothing of optimisers or data.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from model.config import TrainConfig
from model.network import Guidance, StepOutput, gaussian_kl


def balanced_kl(g: Guidance, alpha: float) -> tuple[Tensor, Tensor]:
    """Per-element (balanced KL for the gradient, plain KL(q||p) for logging), float32 (R, S, D)."""
    mu_q, ls_q, mu_p, ls_p = (t.float() for t in (g.mu_q, g.log_sigma_q, g.mu_p, g.log_sigma_p))
    to_prior = gaussian_kl(mu_q.detach(), ls_q.detach(), mu_p, ls_p)  # trains the prior towards q
    to_post = gaussian_kl(mu_q, ls_q, mu_p.detach(), ls_p.detach())  # regularises the posterior
    return alpha * to_prior + (1 - alpha) * to_post, to_prior.detach()


def reduce_kl(kl: Tensor, reduction: str, free_bits: float, out_len: int) -> Tensor:
    """(R, S, D) -> scalar, averaged over rows.

    'elbo': summed over D and positions, divided by out_len: on the scale of the cross-entropy
    (a mean over the out_len answer cells), so beta = 1 is the ELBO whatever S / out_len is;
    'sum_d': summed over D, averaged over positions; 'mean': averaged over everything.
    """
    per_position = kl.mean(-1) if reduction == "mean" else kl.sum(-1)
    if free_bits > 0:
        per_position = per_position.clamp(min=free_bits)
    if reduction == "elbo":
        return per_position.sum(-1).mean() / out_len
    return per_position.mean()


def budget_excess(terms: list[Tensor], spent: Tensor, budget: float) -> tuple[Tensor, Tensor]:
    """KL beyond a per-trajectory budget: (mean excess in nats per row, KL of this step per row).

    `terms` are the balanced per-element KLs of this step's transitions, `spent` the nats (R,)
    a row's earlier supervision steps already used. Only the part of this step's KL that takes a
    row past `budget` is returned, so a row under budget pays nothing extra.
    """
    per_row = torch.stack([t.sum((-1, -2)) for t in terms]).sum(0)  # (R,)
    return (spent + per_row - budget).clamp(min=0).mean(), per_row.detach()


def step_loss(
    out: StepOutput, y: Tensor, tc: TrainConfig, beta: float, kl_spent: Tensor | None = None
) -> tuple[Tensor, dict[str, float], Tensor]:
    """Loss of one supervision step; also returns metrics and the per-row exact-match mask.

    With tc.kl_budget > 0, `kl_spent` (R,) holds each row's KL so far in its trajectory; it is
    advanced in place by this step's KL, and KL beyond the budget costs tc.kl_over_beta more.
    """
    ce = F.cross_entropy(out.logits.flatten(0, 1), y.flatten())
    pred = out.logits.argmax(-1)
    cell_acc = (pred == y).float().mean(-1)  # (R,)
    exact = cell_acc == 1.0
    halt = F.binary_cross_entropy_with_logits(out.q_halt, exact.float())
    lprm = F.mse_loss(out.value, cell_acc)
    loss = ce + tc.halt_weight * halt + tc.lprm_weight * lprm
    metrics = {"ce": ce.item(), "halt_bce": halt.item(), "lprm_mse": lprm.item()}
    if out.guidance:
        terms = [balanced_kl(g, tc.kl_alpha) for g in out.guidance]
        kl_loss = torch.stack(
            [reduce_kl(b, tc.kl_reduction, tc.free_bits, y.shape[1]) for b, _ in terms]
        ).sum()
        loss = loss + beta * kl_loss
        if tc.kl_budget > 0 and kl_spent is not None:
            excess, per_row = budget_excess([b for b, _ in terms], kl_spent, tc.kl_budget)
            loss = loss + tc.kl_over_beta * excess / y.shape[1]
            kl_spent += per_row
            metrics.update({"kl_over": excess.item(), "kl_spent": kl_spent.mean().item()})
        per_t = [plain.sum(-1).mean().item() for _, plain in terms]  # nats per position
        metrics.update({"kl": sum(per_t), "kl_first": per_t[0], "kl_last": per_t[-1]})
    metrics.update(
        {"loss": loss.item(), "cell_acc": cell_acc.mean().item(), "exact": exact.float().mean().item()}
    )
    return loss, metrics, exact


def nearest_completion(logits: Tensor, candidates: Tensor, valid: Tensor) -> Tensor:
    """The candidate each row's logits rate likeliest: logits (R, L, V), candidates (R, G, L) tokens,
    valid (R, G) bool (padding False; every row has one valid candidate) -> (R, L) tokens."""
    logp = torch.log_softmax(logits.float(), -1)  # (R, L, V)
    R, G, L = candidates.shape
    picked = logp.unsqueeze(1).expand(R, G, L, logp.shape[-1]).gather(-1, candidates.unsqueeze(-1))
    score = picked.squeeze(-1).sum(-1).masked_fill(~valid, float("-inf"))  # (R, G)
    return candidates[torch.arange(R), score.argmax(-1)]
