"""ncutils: neural-collapse tools behind the ncbook reproduction of Li et al. (TMLR 2024).

Research library (never imports the book machinery)
----------------------------------------------------
metrics          NC1 (Eq. 4) and its trace ratio, CDNV, numerical rank, NC2 (with its norm and angle parts),
                 NC3, NC4, nearest-class-centre accuracy, per-class quantities, a streaming accumulator.
features         layer-wise features of torchvision ResNets, timm ViTs and ncutils nets.
probe            linear probes on frozen features, layer by layer.
models           architectures, the paper's block numbering, public pre-trained weights.
transforms       the torchvision-v2 transforms: normalisation, preprocessing, augmentation levels.
data             the paper's datasets, offline datasets, subsets and seeded loaders.
pretrain         losses, projection heads, PGD and the pre-training loop (Section 3.1).
finetune         Linear Probe, Layer FT, SCL FT and Full FT (Section 3.3), the prefix cache, the loop.
fewshot          few-shot backbones, CIFAR-FS / miniImageNet, episodes and evaluation (Table 2).
transferability  NCTI, LogME, H-score, LEEP, NCE, N-LEEP, PARC, SFDA, GBC, TransRate, weighted Kendall
                 tau, model ranking.
stats            intervals from seed replicates and bootstrap resampling.
training, runtime, reference
                 optimiser, schedules and checkpoints; devices and seeding; slow reference code.

Book machinery
--------------
book             the reproduction book: experiments as units, their store, profiles, chapter grids,
                 the runner (``python -m ncutils.book``), plots, verdicts and the paper's numbers.

Importing ncutils changes no global state; the training loops flush denormal floats to zero while
they run on the CPU (see ncutils.runtime.cpu_numerics).
"""

from ncutils.metrics import (
    NCAccumulator,
    cdnv,
    nc1,
    nc1_trace_ratio,
    nc2,
    nc2_parts,
    nc2_weight_parts,
    nc3,
    nc4,
    nc_per_class,
    ncc_accuracy,
    numerical_rank,
)

__version__ = "0.1.0"

__all__ = [
    "NCAccumulator",
    "cdnv",
    "nc1",
    "nc1_trace_ratio",
    "nc2",
    "nc2_parts",
    "nc2_weight_parts",
    "nc3",
    "nc4",
    "nc_per_class",
    "ncc_accuracy",
    "numerical_rank",
    "__version__",
]
