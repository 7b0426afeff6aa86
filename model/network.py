"""The GRAM network: a recursive core (h, l) with stochastic guidance h = u + eps.

Receives token inputs (R, L) (R rows = request x trajectory) and, in training, targets (R, L_out).
Hands on the carried latent state, decoder logits, halting / LPRM heads and, in training, the loss
of one supervision step (`forward`, the unit DistributedDataParallel wraps). Knows nothing of tasks,
HTTP or batching; inference rollouts live in model/sampling.py. Shapes: (R, S, D) with
S = puzzle_tokens + L (or + n nodes in the graph layout: ModelConfig.seq_total).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kernels import add_rmsnorm, swiglu_linear
from model.config import ModelConfig


class SwiGLU(nn.Module):
    """W_down(silu(x W_gate) * (x W_up)) over the last axis; no biases. The gate is fused (kernels)."""

    impl = "auto"  # kernels' dispatch: "auto" | "triton" | "ref"; set for the whole model by GRAM.set_impl

    def __init__(self, dim: int, hidden: int, out_dim: int | None = None):
        super().__init__()
        self.gate_up = nn.Linear(dim, 2 * hidden, bias=False)  # rows: [W_gate; W_up]
        self.down = nn.Linear(hidden, out_dim or dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(swiglu_linear(x, self.gate_up.weight.to(x.dtype), impl=self.impl))


def rope_tables(seq: int, head_dim: int) -> tuple[Tensor, Tensor]:
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq, dtype=torch.float32), inv_freq)  # (S, hd/2)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x: (R, H, S, hd); rotate pairs (even, odd) of the head dimension."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class Attention(nn.Module):
    """Bidirectional multi-head self-attention, with rotary positions unless they are learned."""

    cos: Tensor  # (S, head_dim / 2) rotary tables, buffers
    sin: Tensor

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden, bias=False)
        self.out = nn.Linear(cfg.hidden, cfg.hidden, bias=False)
        self.rope = cfg.pos_encoding == "rope"
        cos, sin = rope_tables(cfg.seq_total, cfg.hidden // cfg.heads)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        R, S, D = x.shape
        q, k, v = self.qkv(x).view(R, S, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        if self.rope:
            cos, sin = self.cos.to(x.dtype), self.sin.to(x.dtype)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(R, S, D))


class SequenceMLP(nn.Module):
    """MLP-mixer token mixing: a SwiGLU across the sequence axis (no positions needed)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.mlp = SwiGLU(cfg.seq_total, int(cfg.expansion * cfg.seq_total))

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(x.transpose(1, 2)).transpose(1, 2)


class Block(nn.Module):
    """Post-norm block: x = norm(x + mixer(x)); x = norm(x + SwiGLU(x)); RMSNorm without scale."""

    impl = "auto"

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.mixer = Attention(cfg) if cfg.mixer == "attn" else SequenceMLP(cfg)
        self.mlp = SwiGLU(cfg.hidden, int(cfg.expansion * cfg.hidden))

    def forward(self, x: Tensor) -> Tensor:
        # under autocast the sublayers return bf16 while the residual stream stays in x's dtype
        x = add_rmsnorm(self.mixer(x).to(x.dtype), x, impl=self.impl)
        return add_rmsnorm(self.mlp(x).to(x.dtype), x, impl=self.impl)


class Stack(nn.Module):
    """f(x) = blocks(x): the input injection is summed into x by the caller."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class GaussianHead(nn.Module):
    """Per-token (mu, log sigma) from a feature map; starts at mu = 0, sigma = sigma_init."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        hidden = int(cfg.head_expansion * cfg.hidden)
        self.mu = SwiGLU(cfg.hidden, hidden)
        self.log_sigma = SwiGLU(cfg.hidden, hidden)
        nn.init.zeros_(self.mu.down.weight)
        nn.init.zeros_(self.log_sigma.down.weight)
        self.log_sigma_init = math.log(cfg.sigma_init)
        self.lo, self.hi = cfg.log_sigma_min, cfg.log_sigma_max

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu = self.mu(x)
        log_sigma = (self.log_sigma_init + self.log_sigma(x)).clamp(self.lo, self.hi)
        return mu, log_sigma


def gaussian_kl(mu_q: Tensor, ls_q: Tensor, mu_p: Tensor, ls_p: Tensor) -> Tensor:
    """Elementwise KL(N(mu_q, e^{2 ls_q}) || N(mu_p, e^{2 ls_p}))."""
    return ls_p - ls_q + (torch.exp(2 * ls_q) + (mu_q - mu_p) ** 2) / (2 * torch.exp(2 * ls_p)) - 0.5


@dataclass
class Carry:
    """The latent state carried across supervision steps (detached between steps)."""

    h: Tensor  # (R, S, D)
    l: Tensor  # (R, S, D)


@dataclass
class Guidance:
    """Posterior and prior parameters of one transition, each (R, S, D)."""

    mu_q: Tensor
    log_sigma_q: Tensor
    mu_p: Tensor
    log_sigma_p: Tensor


@dataclass
class StepOutput:
    carry: Carry
    logits: Tensor  # (R, L_out, V)
    q_halt: Tensor  # (R,) logit
    value: Tensor  # (R,) LPRM value in [0, 1]
    guidance: list[Guidance]  # one per transition with a KL term (empty when unguided)


class GRAM(nn.Module):
    h0: Tensor  # (D,) fixed initial states z0 = (h0, l0), buffers saved in the checkpoint
    l0: Tensor

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.impl = "auto"
        D, P, V = cfg.hidden, cfg.puzzle_tokens, cfg.vocab_size
        if cfg.layout == "graph" and cfg.seq_len != cfg.out_len * (cfg.out_len - 1) // 2:
            raise ValueError(
                f"layout 'graph' reads the n(n-1)/2 pair tokens of an n = out_len node graph: "
                f"seq_len {cfg.seq_len} != {cfg.out_len * (cfg.out_len - 1) // 2}"
            )
        # graph layout: one row per (column node j, pair token t), index j * V + t (see node_rows)
        self.embed = nn.Embedding(cfg.out_len * V if cfg.layout == "graph" else V, D)
        nn.init.normal_(self.embed.weight, std=1 / math.sqrt(D))  # e_x = embed * sqrt(D) has RMS ~1
        self.puzzle = nn.Parameter(torch.randn(P, D))  # RMS ~1, like e_x and z0
        if cfg.pos_encoding == "learned":
            self.pos = nn.Parameter(torch.randn(cfg.seq_total, D) / math.sqrt(2))
        self.f_L = Stack(cfg)
        self.f_H = self.f_L if cfg.shared_core else Stack(cfg)
        self.register_buffer("h0", torch.randn(D) * cfg.z0_std)
        self.register_buffer("l0", torch.randn(D) * cfg.z0_std)
        self.decoder = nn.Linear(D, cfg.vocab_size, bias=False)
        self.halt_head = nn.Linear(D, 1)
        self.value_head = nn.Linear(D, 1)
        if cfg.guided:
            self.prior = GaussianHead(cfg)
            self.posterior = GaussianHead(cfg)
            self.answer_embed = nn.Embedding(cfg.vocab_size, D)
            nn.init.normal_(self.answer_embed.weight, std=1 / math.sqrt(D))
        nn.init.zeros_(self.halt_head.weight)
        nn.init.constant_(self.halt_head.bias, -3.0)

    def set_impl(self, impl: str) -> GRAM:
        """Route every fused op through kernels' `impl` ("auto": Triton on CUDA; on CPU the ops' PyTorch
        code, run eagerly or fused by the compiled step of model/step.py)."""
        self.impl = impl
        for module in self.modules():
            if isinstance(module, SwiGLU | Block):
                module.impl = impl
        return self

    # ----- pieces shared by training and sampling -------------------------------------------
    def node_rows(self, x: Tensor) -> Tensor:
        """Graph layout: (R, n(n-1)/2) upper-triangle pair tokens -> (R, n, n) embedding indices
        j * V + token(i, j), the symmetric pair-token matrix with pad (0) on the diagonal."""
        n, V = self.cfg.out_len, self.cfg.vocab_size
        iu, ju = torch.triu_indices(n, n, 1, device=x.device)
        slot = torch.zeros(n, n, dtype=torch.int64, device=x.device)  # (i, j) -> 1 + triangle index
        slot[iu, ju] = slot[ju, iu] = torch.arange(1, len(iu) + 1, device=x.device)
        tokens = torch.cat((x.new_zeros(len(x), 1), x), dim=1)[:, slot]
        return tokens + torch.arange(n, device=x.device) * V

    def embed_input(self, x: Tensor) -> Tensor:
        """(R, L) tokens -> e_x (R, S, D), puzzle tokens prepended. Graph layout: node i's e_x is
        the sum of the embeddings of its row's (j, token) pairs, scaled to RMS ~1."""
        if self.cfg.layout == "graph":
            e = self.embed(self.node_rows(x)).sum(2) * math.sqrt(self.cfg.hidden / self.cfg.out_len)
        else:
            e = self.embed(x) * math.sqrt(self.cfg.hidden)
        e_x = torch.cat((self.puzzle.expand(len(x), -1, -1).to(e.dtype), e), dim=1)
        return e_x + self.pos.to(e.dtype) if self.cfg.pos_encoding == "learned" else e_x

    def initial_carry(self, rows: int, z0_noise: tuple[Tensor, Tensor] | None = None) -> Carry:
        """z0 broadcast over positions; `z0_noise` ((R, D), (R, D)) adds per-row z0 (random_z0 mode)."""
        S, D = self.cfg.seq_total, self.cfg.hidden
        h = self.h0.expand(rows, S, D)
        l = self.l0.expand(rows, S, D)
        if z0_noise is not None:
            h = h + z0_noise[0][:, None, :] * self.cfg.z0_std
            l = l + z0_noise[1][:, None, :] * self.cfg.z0_std
        return Carry(h.contiguous(), l.contiguous())

    def propose(self, carry: Carry, e_x: Tensor) -> tuple[Tensor, Tensor]:
        """One transition without guidance: K low-level updates, then u = f_H(h + l)."""
        h, l = carry.h, carry.l
        for _ in range(self.cfg.K):
            l = self.f_L(l + h + e_x)
        return self.f_H(h + l), l

    def answer_features(self, u: Tensor, y: Tensor) -> Tensor:
        """Posterior input: u plus the embedded answer on the first L_out content positions."""
        P = self.cfg.puzzle_tokens
        ey = self.answer_embed(y).to(u.dtype)
        pad = u.new_zeros(u.shape[0], u.shape[1] - P - y.shape[1], u.shape[2])
        return u + torch.cat((u.new_zeros(u.shape[0], P, u.shape[2]), ey, pad), dim=1)

    def readout(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Decoder logits over content positions; halting and LPRM heads on the detached first token."""
        P = self.cfg.puzzle_tokens
        logits = self.decoder(h[:, P : P + self.cfg.out_len]).float()
        first = h[:, 0].detach().float()
        q_halt = self.halt_head(first).squeeze(-1)
        value = torch.sigmoid(self.value_head(first).squeeze(-1))
        return logits, q_halt, value

    # ----- training: one supervision step (what DDP wraps) -----------------------------------
    def forward(self, carry: Carry, x: Tensor, y: Tensor, kl_all: bool = True) -> StepOutput:
        """T transitions with posterior guidance, gradient through the last one only.

        With kl_all, the KL of the no-gradient transitions is still computed, through the
        heads applied to their detached u (the core gets no gradient from them), so the posterior
        cannot pass y through eps early in a step at no cost.
        """
        cfg = self.cfg
        e_x = self.embed_input(x)
        guidance: list[Guidance] = []
        for t in range(cfg.T):
            last = t == cfg.T - 1
            with torch.set_grad_enabled(last and torch.is_grad_enabled()):
                u, l = self.propose(carry, e_x)
            h = u
            if cfg.guided:
                mu_p, ls_p = self.prior(u)
                mu_q, ls_q = self.posterior(self.answer_features(u, y))
                h = u + mu_q + torch.exp(ls_q) * torch.randn_like(mu_q)
                if last or kl_all:
                    guidance.append(Guidance(mu_q, ls_q, mu_p, ls_p))
            if not last:
                h, l = h.detach(), l.detach()
            carry = Carry(h, l)
        logits, q_halt, value = self.readout(carry.h)
        return StepOutput(carry, logits, q_halt, value, guidance)
