"""Few-shot classification with a frozen pre-trained embedding (paper Section 3.2, Table 2).

Table 2 follows Tian et al. (2020), "Rethinking few-shot image classification: a good embedding
is all you need?" (paper Appendix B.2):

1. **Pre-training.** A backbone (:class:`ConvNet4`, :class:`ResNet12` or :class:`SEResNet12`) is
   trained as an ordinary ``K``-way classifier with cross-entropy on the *merged meta-train
   classes* (``K = 64`` for CIFAR-FS and for miniImageNet), e.g. on ``cifar_fs("train")``. This
   module has no training loop of its own: any generic supervised loop does it (the book uses
   :mod:`ncutils.pretrain`) with the hyper-parameters of :data:`PAPER_RECIPE` (SGD, momentum 0.9,
   weight decay 5e-4, batch 64, learning rate 0.05 decayed by 0.1 three times over 90 epochs
   for CIFAR-FS, twice over 100 epochs for miniImageNet; random crop, colour jitter and
   horizontal flip, :func:`ncutils.transforms.fewshot_train`).
2. **Meta-testing.** The network is frozen; every image of the meta-test split is mapped to its
   penultimate embedding (:func:`embed`). For each of many ``N``-way ``K``-shot episodes
   (:func:`sample_episodes`) a multinomial logistic regression (scikit-learn) is fitted on the
   L2-normalised support embeddings and scored on the query embeddings
   (:func:`evaluate_episodes`); the NC1 (Eq. 4) of the query embeddings of the episode is
   recorded alongside. Accuracies are reported as the mean over episodes with a 95%
   confidence interval.

Data: :func:`cifar_fs` and :func:`mini_imagenet` (:mod:`~ncutils.fewshot.datasets`); backbones in
:mod:`~ncutils.fewshot.backbones`; episodes and their evaluation in
:mod:`~ncutils.fewshot.episodes`.
"""

from ncutils.fewshot.backbones import BACKBONES, ConvNet4, ResNet12, SEResNet12, SqueezeExcitation, backbone
from ncutils.fewshot.datasets import (
    CIFAR100_CLASSES,
    CIFAR_FS_SPLITS,
    CIFAR_FS_TEST_CLASSES,
    CIFAR_FS_TRAIN_CLASSES,
    CIFAR_FS_VAL_CLASSES,
    CIFARFS,
    MINI_IMAGENET_LAYOUT,
    MINI_IMAGENET_SPLIT_SIZES,
    check_cifar_fs,
    check_mini_imagenet,
    cifar_fs,
    fewshot_transform,
    mini_imagenet,
)
from ncutils.fewshot.episodes import (
    PAPER_RECIPE,
    Episode,
    embed,
    evaluate_episodes,
    evaluate_shots,
    paper_optimizer,
    sample_episodes,
    split_nc1,
)

__all__ = [
    "BACKBONES",
    "CIFAR100_CLASSES",
    "CIFAR_FS_SPLITS",
    "CIFAR_FS_TEST_CLASSES",
    "CIFAR_FS_TRAIN_CLASSES",
    "CIFAR_FS_VAL_CLASSES",
    "CIFARFS",
    "ConvNet4",
    "Episode",
    "MINI_IMAGENET_LAYOUT",
    "MINI_IMAGENET_SPLIT_SIZES",
    "PAPER_RECIPE",
    "ResNet12",
    "SEResNet12",
    "SqueezeExcitation",
    "backbone",
    "check_cifar_fs",
    "check_mini_imagenet",
    "cifar_fs",
    "embed",
    "evaluate_episodes",
    "evaluate_shots",
    "fewshot_transform",
    "mini_imagenet",
    "paper_optimizer",
    "sample_episodes",
    "split_nc1",
]
