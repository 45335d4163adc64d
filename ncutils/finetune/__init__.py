"""The fine-tuning methods of Section 3.3 and their training loop.

Four methods, all on a pre-trained backbone with a new linear classifier (Table 3):

``linear``  Linear Probe: only the classifier is trained.
``layer``   Layer FT: one block (ResNet) or encoder layer (ViT) plus the classifier (Fig. 8, left).
``scl``     SCL FT: Layer FT plus a skip connection from the fine-tuned block to the penultimate
            feature (Fig. 8, right). For ResNets the block output is average-pooled to one value
            per channel and zero-padded to the penultimate width (Appendix B.2); for ViTs it is
            reduced like the last layer (final LayerNorm, class token). The sum is the classifier's
            input. The skip adds no parameters.
``full``    Full model FT.

Blocks are numbered as in the paper, from 1 at the input (:func:`ncutils.models.blocks`); the
paper's defaults (Table 3) are Block 5 of ResNet18, Block 8 of ResNet50 and Layer 8 of
ViT-B/32 (:data:`PAPER_BLOCK`). Any timm Vision Transformer splits the same way, CLIP's image
encoder (``vit_base_patch32_clip_224``, with its pre-norm) included.

The frozen prefix (everything before the fine-tuned block, or the whole encoder for the linear
probe) receives no gradient. The normalisation layers update their running statistics on the
downstream data (Appendix B.2): :func:`fit` re-estimates the prefix's BatchNorm statistics on the
downstream training data in one pass (exact population statistics) and then runs the prefix in
evaluation mode, while the trained block and everything after it train in training mode (their
statistics follow the downstream batches). The prefix is then a fixed function of its input, so
:func:`fit` can compute its output once and train on the cache when the inputs are not augmented
(``prefix_cache="auto"``: in memory if it fits a memory budget, else on disk in float16, else no
cache), and each epoch runs only the blocks from ``k`` on, with the same result as without the
cache. LayerNorm networks (ViT) have nothing to re-estimate.

Modules: :mod:`~ncutils.finetune.methods` (the networks and their parameter accounting),
:mod:`~ncutils.finetune.prefix_cache` and :mod:`~ncutils.finetune.loop` (:func:`fit`,
:func:`evaluate`).
"""

from ncutils.finetune.loop import FitResult, fit
from ncutils.finetune.methods import (
    ARCHS,
    METHODS,
    PAPER_BLOCK,
    FineTuneNet,
    build,
    prepare,
    reproduce_percentages,
    trainable_fraction,
)
from ncutils.finetune.prefix_cache import estimate_cache_bytes
from ncutils.training import evaluate

__all__ = [
    "ARCHS",
    "METHODS",
    "PAPER_BLOCK",
    "FineTuneNet",
    "FitResult",
    "build",
    "estimate_cache_bytes",
    "evaluate",
    "fit",
    "prepare",
    "reproduce_percentages",
    "trainable_fraction",
]
