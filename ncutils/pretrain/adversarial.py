"""Adversarial examples for the adversarial pre-training of Fig. 4 (Madry et al. 2018)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ncutils.pretrain.losses import ce_loss
from ncutils.training import modes_kept

__all__ = ["PAPER_EPSILONS", "pgd_attack"]

#: l-infinity attack radii of the adversarial pre-training in Fig. 4 (Appendix B), pixel scale [0, 1].
PAPER_EPSILONS: tuple[float, ...] = (1 / 255, 2 / 255, 3 / 255, 5 / 255, 8 / 255)


def pgd_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    random_start: bool = True,
) -> torch.Tensor:
    r"""l-infinity projected gradient ascent on the loss (Madry et al. 2018), as used for Fig. 4.

    Starting from ``x`` (plus uniform noise in the ball when ``random_start``), takes ``steps``
    signed-gradient steps of ``step_size`` (default ``2.5 * eps / steps``) and projects back onto
    :math:`\{x' : \lVert x' - x \rVert_\infty \le \varepsilon,\ 0 \le x' \le 1\}`. The model sees pixel-space inputs,
    so it must normalise them itself (:class:`~ncutils.pretrain.networks.Normalize`). It runs in eval mode
    (BatchNorm statistics are not updated by the attack) and the training flags of its modules
    are restored afterwards.

    Returns
    -------
    Tensor
        Detached adversarial inputs of ``x``'s shape.
    """
    if not 0 <= eps <= 1:
        raise ValueError(f"eps is an l-infinity radius on pixels in [0, 1]; got {eps}. Use e.g. 8/255.")
    if steps < 0:
        raise ValueError(f"steps must be non-negative; got {steps}.")
    x = x.detach()
    if eps == 0 or steps == 0:
        return x.clone()
    step_size = 2.5 * eps / steps if step_size is None else step_size
    loss_fn = loss_fn or ce_loss
    lo, hi = (x - eps).clamp_min(0.0), (x + eps).clamp_max(1.0)
    x_adv = x.clone()
    if random_start:
        x_adv = x_adv + torch.empty_like(x).uniform_(-eps, eps)
    x_adv = torch.max(torch.min(x_adv, hi), lo)
    with modes_kept(model), torch.enable_grad():
        model.eval()
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = loss_fn(model(x_adv).float(), y)
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = torch.max(torch.min(x_adv.detach() + step_size * grad.sign(), hi), lo)
    return x_adv.detach()

