"""Pre-training on source data and linear transfer (paper Section 3.1: Table 1, Figs. 3-5; Appendix B).

Section 3.1 pre-trains a network on the source data (Cifar-100) under several settings, measures
``NC1`` (Eq. 4) of its penultimate features on the source training data, and transfers the
frozen encoder to a downstream task (Cifar-10) by training a linear classifier on its features:

* **losses** (Table 1, Fig. 3): cross-entropy, MSE on one-hot targets (Hui & Belkin 2020, with
  their scaled variant) and supervised contrastive learning (SupCon, Khosla et al. 2020); and, without
  labels, SimCLR's contrastive loss (Chen et al. 2020) for the stand-in of the TMLR version's CLIP encoder;
* **projection heads** (Table 1, Fig. 3): 0 (none), 1 (linear) or 2-3 layer MLPs with ReLU
  between the encoder and the loss; only the encoder is transferred, the head is discarded;
* **data augmentation** (Fig. 4, Appendix B): five cumulative levels, from normalisation only
  to normalisation + RandomCrop + RandomHorizontalFlip + ColorJitter + RandomGrayscale;
* **adversarial training** (Fig. 4; Madry et al. 2018): l-infinity PGD with radii
  :data:`PAPER_EPSILONS` = 1/255, 2/255, 3/255, 5/255 and 8/255 (pixel scale).

Every run uses the paper's recipe (Appendix B): 200 epochs of SGD (momentum 0.9, weight decay
1e-4) with a cosine learning rate from 1e-1 to 1e-4, here stepped once per iteration like
:func:`ncutils.probe.linear_probe`. :func:`pretrain` logs NC1 after every epoch (Fig. 3's trend)
and checkpoints after every epoch through :class:`ncutils.training.Checkpoint`; a resumed run
ends with the same weights as an uninterrupted one. :func:`transfer` is the evaluation of
Table 1 and Figs. 4, 5: frozen features, a linear probe, the downstream NC1.

Input spaces. :class:`PretrainNet` may carry its own :class:`Normalize` module. Adversarial
training needs it, because PGD perturbs and clips pixel values in ``[0, 1]``: build the training
data with ``ncutils.transforms.augmentation(..., normalize=False)`` and the network with
``normalize=Normalize(mean, std)``. ``net.encoder`` itself always takes *normalised* images, so
the transferred encoder is evaluated with the usual normalised downstream data whichever way it
was pre-trained.

Modules: :mod:`~ncutils.pretrain.losses`, :mod:`~ncutils.pretrain.networks`,
:mod:`~ncutils.pretrain.adversarial` and :mod:`~ncutils.pretrain.loop`; the augmentation levels
of Fig. 4 are in :mod:`ncutils.transforms`.
"""

from ncutils.pretrain.adversarial import PAPER_EPSILONS, pgd_attack
from ncutils.pretrain.loop import pretrain, source_nc1, transfer
from ncutils.pretrain.losses import (
    CONTRASTIVE,
    LOSSES,
    Loss,
    as_loss,
    ce_loss,
    make_loss,
    mse_loss,
    simclr_loss,
    supcon_loss,
)
from ncutils.pretrain.networks import Normalize, PretrainNet, ProjectionHead, projection_head

__all__ = [
    "CONTRASTIVE",
    "LOSSES",
    "PAPER_EPSILONS",
    "Loss",
    "Normalize",
    "PretrainNet",
    "ProjectionHead",
    "as_loss",
    "ce_loss",
    "make_loss",
    "mse_loss",
    "pgd_attack",
    "pretrain",
    "projection_head",
    "simclr_loss",
    "source_nc1",
    "supcon_loss",
    "transfer",
]
