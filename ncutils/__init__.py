"""ncutils: neural-collapse tools behind the ncbook reproduction of Li et al. (TMLR 2024).

Modules
-------
metrics          NC1 (Eq. 4), CDNV, numerical rank, NC2, NC3, and a streaming accumulator.
features         layer-wise features of torchvision ResNets, timm ViTs and ncutils nets.
models           architectures and the paper's block numbering.
finetune         Linear Probe, Layer FT, SCL FT and Full FT (Section 3.3) with parameter accounting.
pretrain         losses, projection heads, augmentation levels, PGD and transfer (Section 3.1).
fewshot          few-shot backbones, episodes and evaluation (Table 2).
transferability  NCTI, LogME, H-score, weighted Kendall tau, model ranking.
data, setups     the paper's datasets, offline datasets, and what each book profile runs on.
probe, training, results, published, plotting, reference, book
                 linear probes, training helpers, resumable results, the paper's numbers,
                 figures, slow reference implementations, and the book runner.

Importing ncutils makes CPU arithmetic flush denormal floats to zero (see ncutils.runtime).
"""

from ncutils.metrics import NCAccumulator, cdnv, nc1, nc2, nc3, nc_metrics, numerical_rank
from ncutils.runtime import flush_denormals

flush_denormals()  # denormal floats make CPU training 10-40x slower (see ncutils.runtime)

__version__ = "0.1.0"

__all__ = ["NCAccumulator", "cdnv", "nc1", "nc2", "nc3", "nc_metrics", "numerical_rank", "__version__"]
