"""Transferability estimation: NCTI (Wang et al., ICCV 2023) and the LogME, H-score, NC1, LEEP, NCE,
N-LEEP, PARC, SFDA, GBC and TransRate baselines.

A transferability score ranks candidate pre-trained models for a target dataset from the frozen
penultimate features alone, without fine-tuning any of them; a good score orders the models
like their accuracies after fine-tuning, measured by the weighted Kendall tau
(:func:`weighted_kendall`).

NCTI (Neural Collapse informed Transferability Index) measures how far the features of each
model are from the neural-collapse geometry reached at the end of fine-tuning, with three terms
computed by :func:`ncti_components` on the features ``H`` (``N x d``) and labels of the target
training set:

1. the features are reduced to at most 64 dimensions by PCA, and a linear discriminant analysis
   (LDA) is fitted on them with the shrinkage ``exp(-sum of the 32 largest PCA variances)``;
   when that underflows (``<= 1e-10``) the LDA is the unshrunk SVD-solver one;
2. ``S_seli = ||Z - 1 mean(Z)||_*``, the nuclear norm of the centred LDA projections ``Z`` (SELI
   geometry: a higher rank of the features is closer to the fine-tuned logits);
3. ``S_ncc = (1/N) sum_i P[i, y_i]``, the mean LDA posterior of the true class (nearest-centre
   classifier);
4. ``S_vc = log sum_c ||P_c||_*``, with ``P_c`` the posterior rows of class ``c`` (within-class
   variability, which collapses during fine-tuning).

:func:`ncti` min-max normalises each term over the candidate models and returns
``S_seli + S_ncc - S_vc``. :func:`rank_models` runs everything from model names and a dataset.

Further baselines, each following its paper and reference code, are in
:mod:`~ncutils.transferability.baselines`: :func:`leep` (source-classifier probabilities),
:func:`nce` (predicted source classes), and on features :func:`nleep`, :func:`parc`, :func:`sfda`,
:func:`gbc` and :func:`transrate`.

Modules: :mod:`~ncutils.transferability.scores` (the scores and the weighted Kendall tau),
:mod:`~ncutils.transferability.baselines` (LEEP, NCE, N-LEEP, PARC, SFDA, GBC, TransRate) and
:mod:`~ncutils.transferability.ranking` (:func:`rank_models`). The published numbers of the NCTI
evaluation are in :mod:`ncutils.book.published`.

References
----------
Z. Wang, Y. Luo, L. Zheng, Z. Huang, M. Baktashmotlagh. How Far Pre-trained Models Are from Neural
Collapse on the Target Dataset Informs their Transferability. ICCV 2023.
K. You, Y. Liu, J. Wang, M. Long. LogME: Practical Assessment of Pre-trained Models for Transfer
Learning. ICML 2021; K. You et al., Ranking and Tuning Pre-trained Models: A New Paradigm for
Exploiting Model Hubs. JMLR 2022.
Y. Bao, Y. Li, S.-L. Huang, L. Zhang, L. Zheng, A. Zamir, L. Guibas. An Information-Theoretic
Approach to Transferability in Task Transfer Learning. ICIP 2019.
"""

from ncutils.transferability.baselines import gbc, leep, nce, nleep, parc, sfda, transrate
from ncutils.transferability.ranking import rank_models
from ncutils.transferability.scores import (
    NCTI_TERMS,
    SCORES,
    hscore,
    logme,
    nc1_score,
    ncti,
    ncti_components,
    normalize_components,
    weighted_kendall,
)

__all__ = [
    "NCTI_TERMS",
    "SCORES",
    "gbc",
    "hscore",
    "leep",
    "logme",
    "nc1_score",
    "nce",
    "ncti",
    "ncti_components",
    "nleep",
    "normalize_components",
    "parc",
    "rank_models",
    "sfda",
    "transrate",
    "weighted_kendall",
]
