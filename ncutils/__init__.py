"""ncutils: neural-collapse tools behind the ncbook reproduction of Li et al. (TMLR 2024).

Modules
-------
metrics          NC1 (Eq. 4), CDNV, numerical rank, NC2, NC3, and a streaming accumulator.
features         layer-wise features of torchvision ResNets, timm ViTs and ncutils nets.
models           architectures and the paper's block numbering.
"""

from ncutils.metrics import NCAccumulator, cdnv, nc1, nc2, nc3, nc_metrics, numerical_rank

__version__ = "0.1.0"

__all__ = ["NCAccumulator", "cdnv", "nc1", "nc2", "nc3", "nc_metrics", "numerical_rank", "__version__"]
