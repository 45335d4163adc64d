"""Every claim the book tests, stated once, before any number: the paper's words in its own qualification,
where it says so, what it printed, the regime the claim is about, and the rule that decides it.

Chapters show a claim (``CLAIMS[key].show()``) before the experiment that tests it and, after it, apply
the rule with :func:`ncutils.book.verdicts.judge`; the claims page lists them all with their verdicts.
Rules use 95% intervals (:mod:`ncutils.stats`): seed replicates where units are cheap, bootstrap or
binomial intervals over test samples, episodes or models otherwise. A correlation over fewer than five
points is described in the text but never decides a verdict alone.

How a rule's tests combine (``Claim.combine``) follows the paper's own qualification of the claim: a claim
the paper states without one must hold in every test (``"all"``); where the paper admits exceptions
("generally", "on various datasets", "on a variety of datasets"), more than half of the tests must come out
as predicted, whatever the rest (``"majority"``); the NCTI ranking claim, compared over a few target sets,
is supported when most tests come out as predicted and none against (``"most"``).
"""

from __future__ import annotations

from ncutils.book.verdicts import Claim

__all__ = ["CLAIMS", "TERMINAL"]

#: The terminal phase of training, the regime of the claims about pre-trained (source) models.
TERMINAL = 99.5

_TERMINAL_REGIME = (f"networks trained to the terminal phase: at least {TERMINAL:g}% accuracy on the un-augmented "
                    "source training data (the paper trains for 200 epochs to about 100%)")

_CLAIMS = [
    # ---------------------------------------------------------------- Chapter 1
    Claim("nc1_metric", "NC1 (Eq. 4) measures within-class variability relative to the separation of the class "
          "means: it is 0 when every feature equals its class mean and grows with the within-class spread.",
          "Section 2.3, Eq. 4", "a definition (no number)",
          "Supported when NC1 of collapsed features is below 1e-12 and, for isotropic noise of standard deviation "
          "σ ≤ 0.3 around simplex-ETF class means, the measured NC1 lies within a factor 0.8–1.25 of its "
          "closed-form population value (the interval is the range of that ratio over the noise levels); not "
          "supported otherwise.", chapter=1,
          short="NC1 measures collapse (Eq. 4)"),
    Claim("surrogates", "CDNV and the numerical rank are inexpensive surrogates of NC1: they order feature sets "
          "by collapse as NC1 does.", "Appendix A", "no number (a motivation for the surrogates)",
          "For each surrogate, Kendall's τ with NC1 over a population of random feature sets, with a bootstrap "
          "interval over the feature sets. Supported when both come out as predicted; not supported when one "
          "comes out against.", chapter=1,
          deltas={'correlation': 0.3},
          short="CDNV, rank order like NC1 (App. A)"),
    # ---------------------------------------------------------------- Chapter 2
    Claim("progressive", "Layer-wise progressive collapse is a common occurrence across training losses, "
          "network architectures and datasets: NC1 decreases from shallow to deep layers.",
          "Section 2.4, Fig. 2", "Fig. 2: NC1 falls layer after layer for MLPs on MNIST/FashionMNIST and ResNet18 "
          "on Cifar-10/100, with CE, MSE and SupCon",
          "What Fig. 2 shows, NC1 falling from each layer to the next: for every network in the regime, the "
          "fraction of its consecutive layer pairs in which NC1 falls. Statistic: the mean of those fractions over "
          "the networks, with a t interval over networks. Supported when the interval lies above 1/2 (most steps "
          "fall: the collapse progresses layer by layer); not supported when it lies below 1/2 + δ (NC1 falls in "
          "hardly more than half the steps, or fewer).", regime=_TERMINAL_REGIME, chapter=2,
          deltas={'fraction': 0.1},
          short="NC1 falls layer by layer (Fig. 2)"),
    # ---------------------------------------------------------------- Chapter 3
    Claim("table1", "Less collapsed features on the source data transfer better, to a certain extent: across "
          "pre-training losses and projection heads, larger source NC1 goes with higher transfer accuracy.",
          "Section 3.1, Table 1", "source NC1 / transfer accuracy on Cifar-10: MSE 0.001 / 53.96, CE 0.771 / 71.20, "
          "SupCon + linear head 0.792 / 69.89, SupCon + MLP head 2.991 / 79.51",
          "Transfer accuracy is the mean linear-probe accuracy over the book's downstream sets (the paper: "
          "Cifar-10). Two tests over the seed replicates of the four settings: (1) Spearman's correlation "
          "between source NC1 "
          "and transfer accuracy over all models, with a bootstrap interval that resamples whole seeds, above 0; "
          "(2) the paired difference in transfer accuracy between the least collapsed setting (SupCon + MLP head) "
          "and the most collapsed one (MSE), with a t interval over seeds, above 0. Supported when both are; not "
          "supported when either comes out against (its interval below δ).", regime=_TERMINAL_REGIME, chapter=3,
          deltas={'correlation': 0.3, 'accuracy': 1.0},
          short="less source collapse transfers (Table 1)"),
    Claim("fig3_heads", "Projection layers in pre-training increase feature diversity for better transferability: "
          "with a projection head, the encoder's source features are less collapsed and transfer better.",
          "Section 3.1, Fig. 3", "Fig. 3: for MSE, CE and SupCon, encoders trained with one to three projection "
          "layers have larger source NC1 and higher transfer accuracy than without a head",
          "For every head depth h ≥ 1 trained, two paired differences over seeds against the same loss without a "
          "head: log(source NC1 (h) / NC1 (none)) above 0 and transfer accuracy (h) − (none) above 0 (t intervals; "
          "transfer accuracy: the mean linear-probe accuracy over the downstream sets). "
          "The paper states the claim without qualification ('significantly increases representation diversity "
          "and transfer accuracy'): supported when every test comes out as predicted; not supported when any "
          "comes out against.", regime=_TERMINAL_REGIME, chapter=3,
          deltas={'log NC1 ratio': 0.1, 'accuracy': 1.0},
          short="projection heads help (Fig. 3)"),
    Claim("fig4_threshold", "The positive relation between source NC1 and transfer accuracy holds only up to a "
          "certain threshold: beyond it, more diverse features (stronger augmentation or adversarial training) "
          "transfer worse.", "Section 3.1, Fig. 4", "Fig. 4: transfer accuracy on Cifar-10 first rises with source "
          "NC1, then falls for the most diverse models",
          "Among the Fig. 4 models in the terminal phase, ordered by source NC1, the best-transferring model must "
          "be an interior one (transfer accuracy: the mean over the downstream sets): its accuracy minus that of "
          "the least collapsed model (largest NC1) above 0, and "
          "minus that of the most collapsed model above 0, each with an interval that adds the test-sample "
          "(binomial) error and the seed spread of Table 1's CE models. Needs at least three models in the "
          "regime spanning the NC1 range; otherwise inconclusive.", regime=_TERMINAL_REGIME, chapter=3,
          deltas={'accuracy': 1.0},
          short="only up to a threshold (Fig. 4)"),
    Claim("random_features", "Randomly initialised networks have large NC1 but poor between-class discrimination, "
          "so random features transfer poorly.", "Section 3.1, after Fig. 4", "no number (an argument)",
          "Randomly initialised encoders of Table 1's network (one per random seed) against the cross-entropy "
          "source models of the same architecture (Table 1's seed replicates): the mean log downstream NC1 of the "
          "random ones above the trained ones' (Welch interval of the difference above 0), and their mean "
          "transfer accuracy below (Welch interval below 0). Supported when both come out as predicted; not "
          "supported when either comes out against.", chapter=3,
          deltas={'log NC1 ratio': 0.4, 'accuracy': 1.0},
          short="random features transfer poorly"),
    # ---------------------------------------------------------------- Chapter 4
    Claim("fig5_downstream", "Pre-trained models with more collapsed last-layer features on the downstream data "
          "generally exhibit better transferability: 'greater collapse of features on the downstream data "
          "generally leads to better transfer accuracy'.", "Section 1; Section 3.2, Figs. 5 and 6",
          "Figs. 5-6: across models pre-trained on Cifar-100 (Fig. 5) and across public ImageNet models (Fig. 6), "
          "NC1 on the downstream training data falls as transfer accuracy rises",
          "For each downstream set: Spearman's correlation between downstream NC1 and transfer accuracy over all "
          "the pre-trained models probed on it (at least five), with a bootstrap interval over models, below 0. "
          "As the paper qualifies the claim ('generally'; its Appendix C.1 finds the correlation 'less apparent' "
          "with NC1 measured on each set itself, as here), supported when more than half of the sets come out as "
          "predicted, whatever the rest; not supported when more than half come out against (the interval above "
          "−δ: no correlation as strong as δ).",
          regime=_TERMINAL_REGIME, chapter=4,
          deltas={'correlation': 0.3}, combine="majority",
          short="downstream collapse helps (Figs. 5-6)"),
    Claim("table2_fewshot", "For few-shot learning too, backbones whose features are more collapsed on the "
          "meta-test data generally reach higher few-shot accuracy ('a similar phenomenon also happens for few-shot "
          "learning').", "Section 1; Section 3.2, Table 2",
          "Table 2: on CIFAR-FS and miniImageNet, the order of 1-shot and 5-shot accuracy of three backbones "
          "(ConvNet4, ResNet12, SEResNet12) follows "
          "the order of their NC1 on the meta-test classes",
          "For every benchmark and number of shots, the backbones ordered by meta-test NC1: for each neighbouring "
          "pair, accuracy (more collapsed) − accuracy (less collapsed), paired over the same episodes (both "
          "backbones classify the same support and query images; t interval over episodes), above 0. As the "
          "paper qualifies the claim ('generally'), supported when more than half of the pairs come out as "
          "predicted, whatever the rest; not supported when more than half come out against. With fewer than "
          "five backbones the correlation is shown, not used.", regime=_TERMINAL_REGIME, chapter=4,
          deltas={'accuracy': 1.0}, combine="majority",
          short="few-shot follows NC1 (Table 2)"),
    Claim("fig9_layers", "Within one pre-trained model, layers whose output features are more collapsed on the "
          "downstream data give better linear transfer.", "Section 3.2, Fig. 9",
          "Fig. 9: NC1 of each block's features on Cifar-10 falls and the layer's linear-probe accuracy rises "
          "towards the output (ResNet34, ViT-B/32)",
          "For each network: Spearman's correlation between a layer's downstream NC1 and its probe accuracy over "
          "its layers (at least five), with a bootstrap interval over layers, below 0. Supported when every "
          "network's interval is below 0; not supported when any comes out against (its interval above −δ).", chapter=4,
          deltas={'correlation': 0.3},
          short="collapsed layers probe better (Fig. 9)"),
    # ---------------------------------------------------------------- Chapter 5
    Claim("fig10_depth", "Fine-tuning a layer closer to the output usually leads to more collapsed penultimate "
          "features and better transfer accuracy.", "Section 3.3, Fig. 10; Tables 5-7",
          "Fig. 10 and Tables 5-7: accuracy mostly rises and NC1 mostly falls with the fine-tuned block's depth",
          "Over every (network, dataset, method) and every pair of fine-tuned blocks, the deeper block coming out "
          "with both lower penultimate NC1 and higher test accuracy. Statistic: the fraction of such pairs, with a "
          "Wilson interval. Supported when it lies above 1/2 (usually); not supported when it lies below 1/2 + δ.",
          chapter=5,
          deltas={'fraction': 0.1},
          short="deeper block, better (Fig. 10)"),
    Claim("table3_layer", "Fine-tuning one intermediate layer (Layer FT) gives substantial gains over linear "
          "probing on a variety of datasets.", "Section 3.3, Table 3",
          "Table 3: Layer FT beats linear probing in 12 of its 13 cells, by 0.14 (ResNet50, Oxford-IIIT-Pet) to 28.42 "
          "points (ResNet18, FGVC-Aircraft); the gains on Oxford-IIIT-Pet are small (0.14-1.64 points), and for "
          "ResNet50 on DTD Layer FT is below linear probing (67.66 vs 68.46)",
          "For every (network, dataset): accuracy (Layer FT) − accuracy (linear probe) with a binomial interval over "
          "test samples, above 0. As the paper qualifies the claim ('on a variety of datasets'; its own Table 3 "
          "has an exception), supported when more than half of the cells come out as predicted, whatever the "
          "rest; not supported when more than half come out against.", chapter=5,
          deltas={'accuracy': 1.0}, combine="majority",
          short="Layer FT beats probing (Table 3)"),
    Claim("table3_scl", "SCL FT outperforms Layer FT and achieves comparable or better results than full "
          "fine-tuning on various datasets.", "Section 3.3, Table 3",
          "Table 3: SCL FT ≥ Layer FT in 12 of 13 cells (ViT-B on FGVC-Aircraft: 65.80 vs 65.83); against full FT, "
          "SCL FT is above it in every Cifar-10, DTD and Oxford-IIIT-Pet cell and on FGVC-Aircraft for ViT-B "
          "(65.80 vs 64.66), only 0.56 below it for ResNet50 on Cifar-100, and 4.30 (ResNet18, Cifar-100) to 10.05 "
          "points (ResNet50, FGVC-Aircraft) below it in the other three cells",
          "For every (network, dataset), two tests with binomial intervals over test samples: SCL FT − Layer FT "
          "above 0, and SCL FT − full FT comparable or better (above −δ, δ = 3 points). As the paper qualifies "
          "the claim "
          "('on various datasets', and its own Table 3 has exceptions), supported when more than half of the "
          "tests come out as predicted, whatever the rest; not supported when more than half come out against.",
          chapter=5,
          deltas={'accuracy': 1.0, 'margin': 3.0}, combine="majority",
          short="SCL FT ≥ Layer FT, ~ full FT (Table 3)"),
    Claim("parameters", "Layer FT and SCL FT fine-tune at least 70% fewer parameters than full fine-tuning "
          "(arXiv text; the TMLR version says at least 90%).", "Abstract; Section 3.3; Table 3",
          "Table 3: 6-8% of the parameters for the middle blocks (Block 5 of ResNet18, Block 8 of ResNet50, "
          "Layer 8 of ViT-B/32)",
          "Counted exactly (no uncertainty): the largest fraction of parameters that Layer FT or SCL FT trains at "
          "the book's chosen block, over the networks of Table 3, below 30% (and below 10% for the TMLR wording).",
          chapter=5,
          short="≥ 70% fewer parameters (Table 3)"),
    Claim("fig11_scarce", "With scarce downstream data, Layer FT and SCL FT alleviate the overfitting of full "
          "fine-tuning: they match or beat it when there are few samples per class.", "Section 3.3, Fig. 11",
          "Fig. 11: on Cifar-10 subsets, SCL FT and Layer FT beat full FT at the smallest sizes",
          "At each of the two smallest sizes: accuracy (SCL FT) − accuracy (full FT), paired over seed replicates "
          "(each seed its own source model, training subset and fine-tuning run; t interval), comparable or "
          "better: above −δ (δ = 1 point; matches or beats). Supported when both come "
          "out as predicted; not supported "
          "when either comes out against.", regime=f"full fine-tuning overfits at those sizes: at least {TERMINAL:g}% "
          "training accuracy with test accuracy at least 10 points lower", chapter=5,
          deltas={'margin': 1.0},
          short="scarce data: SCL FT holds (Fig. 11)"),
    # ---------------------------------------------------------------- Chapter 6 (NCTI)
    Claim("ncti_rank", "NCTI ranks pre-trained models by their transferability better than the scores it is "
          "compared with: its ranking correlates with the ground-truth ranking of transfer accuracy, more closely "
          "than LogME, LEEP, N-LEEP, PARC, SFDA and the others do.", "NCTI (Wang et al., ICCV 2023), Table 1; the "
          "write-up's re-run of the authors' code", "weighted Kendall τ 0.843 for 11 supervised ImageNet models on "
          "Cifar-10 (the write-up's re-run of the authors' code, which matched the NCTI paper), the best of the "
          "scores in the NCTI paper's Table 1",
          "For every target set, two tests with bootstrap intervals over candidate models: (1) the weighted "
          "Kendall τ between NCTI and the models' transfer accuracy above 0; (2) τ(NCTI) minus τ of the strongest "
          "baseline (the one with the highest mean τ over the target sets), paired over candidates, above 0. "
          "Supported when most tests come out as predicted and none against; not supported when most come out "
          "against.", chapter=6,
          deltas={'correlation': 0.3, 'advantage': 0.1}, combine="most",
          short="NCTI ranks best (NCTI Table 1)"),
]

CLAIMS: dict[str, Claim] = {c.key: c for c in _CLAIMS}
if len(CLAIMS) != len(_CLAIMS):
    raise RuntimeError("claim keys must be unique.")
