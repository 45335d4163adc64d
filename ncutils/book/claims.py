"""Every claim the book tests, stated once, before any number: the paper's words in its own qualification,
where it says so, what it printed, and the regime the claim is about.

How each claim is decided is its rule, code in :mod:`ncutils.book.rules` under the same key (the words a reader
sees are generated from it); how often that rule misleads at the book's design is measured in
:mod:`ncutils.book.calibration`; every revision of a rule after the claim was first built is recorded in
:mod:`ncutils.book.rule_history`. Chapters show a claim (``RULES[key].show()``) before the experiment that tests
it and, after it, build the evidence table and call ``RULES[key].judge(evidence)``.
"""

from __future__ import annotations

from ncutils.book.verdicts import TERMINAL, Claim

__all__ = ["CLAIMS", "TERMINAL"]

_TERMINAL_REGIME = (f"networks trained to the terminal phase: at least {TERMINAL:g}% accuracy on the un-augmented "
                    "source training data (the paper trains for 200 epochs to about 100%)")

_CLAIMS = [
    Claim('nc1_metric',
          text=(
              'NC1 (Eq. 4) measures within-class variability relative to the separation of the class means: it is 0'
              ' when every feature equals its class mean and grows with the within-class spread.'),
          where=(
              'Section 2.3, Eq. 4'),
          paper=(
              'a definition (no number)'),
          chapter=1, short='NC1 measures collapse (Eq. 4)',
          note=('This checks the code against a closed form: a unit test of the metric, shown for the reader, not a '
                'finding about neural networks.')),
    Claim('surrogates',
          text=(
              'CDNV and the numerical rank are inexpensive surrogates of NC1: they order feature sets by collapse '
              'as NC1 does.'),
          where=(
              'Appendix A'),
          paper=(
              'no number (a motivation for the surrogates)'),
          chapter=1, short='CDNV, rank order like NC1 (App. A)'),
    Claim('progressive',
          text=(
              'Layer-wise progressive collapse is a common occurrence across training losses, network architectures'
              ' and datasets: NC1 decreases from shallow to deep layers.'),
          where=(
              'Section 2.4, Fig. 2'),
          paper=(
              'Fig. 2: NC1 falls layer after layer for MLPs on MNIST/FashionMNIST and ResNet18 on Cifar-10/100, '
              'with CE, MSE and SupCon'),
          regime=_TERMINAL_REGIME,
          chapter=2, short='NC1 falls layer by layer (Fig. 2)'),
    Claim('table1',
          text=(
              'Less collapsed features on the source data transfer better, to a certain extent: across pre-training'
              ' losses and projection heads, larger source NC1 goes with higher transfer accuracy.'),
          where=(
              'Section 3.1, Table 1'),
          paper=(
              'source NC1 / transfer accuracy on Cifar-10: MSE 0.001 / 53.96, CE 0.771 / 71.20, SupCon + linear '
              'head 0.792 / 69.89, SupCon + MLP head 2.991 / 79.51'),
          regime=_TERMINAL_REGIME,
          chapter=3, short='less source collapse transfers (Table 1)'),
    Claim('fig3_heads',
          text=(
              'Projection layers in pre-training increase feature diversity for better transferability: with a '
              "projection head, the encoder's source features are less collapsed and transfer better."),
          where=(
              'Section 3.1, Fig. 3'),
          paper=(
              'Fig. 3: for MSE, CE and SupCon, encoders trained with one to three projection layers have larger '
              'source NC1 and higher transfer accuracy than without a head'),
          regime=_TERMINAL_REGIME,
          chapter=3, short='projection heads help (Fig. 3)'),
    Claim('fig4_threshold',
          text=(
              'The positive relation between source NC1 and transfer accuracy holds only up to a certain threshold:'
              ' beyond it, more diverse features (stronger augmentation or adversarial training) transfer worse.'),
          where=(
              'Section 3.1, Fig. 4'),
          paper=(
              'Fig. 4: transfer accuracy on Cifar-10 first rises with source NC1, then falls for the most diverse '
              'models'),
          regime=_TERMINAL_REGIME,
          chapter=3, short='only up to a threshold (Fig. 4)'),
    Claim('random_features',
          text=(
              'Randomly initialised networks have large NC1 but poor between-class discrimination, so random '
              'features transfer poorly.'),
          where=(
              'Section 3.1, after Fig. 4'),
          paper=(
              'no number (an argument)'),
          chapter=3, short='random features transfer poorly'),
    Claim('fig5_downstream',
          text=(
              'Pre-trained models with more collapsed last-layer features on the downstream data generally exhibit '
              "better transferability: 'greater collapse of features on the downstream data generally leads to "
              "better transfer accuracy'."),
          where=(
              'Section 1; Section 3.2, Figs. 5 and 6'),
          paper=(
              'Figs. 5-6: across models pre-trained on Cifar-100 (Fig. 5) and across public ImageNet models (Fig. '
              '6), NC1 on the downstream training data falls as transfer accuracy rises'),
          regime=_TERMINAL_REGIME,
          chapter=4, short='downstream collapse helps (Figs. 5-6)'),
    Claim('table2_fewshot',
          text=(
              'For few-shot learning too, backbones whose features are more collapsed on the meta-test data '
              "generally reach higher few-shot accuracy ('a similar phenomenon also happens for few-shot "
              "learning')."),
          where=(
              'Section 1; Section 3.2, Table 2'),
          paper=(
              'Table 2: on CIFAR-FS and miniImageNet, the order of 1-shot and 5-shot accuracy of three backbones '
              '(ConvNet4, ResNet12, SEResNet12) follows the order of their NC1 on the meta-test classes'),
          regime=_TERMINAL_REGIME,
          chapter=4, short='few-shot follows NC1 (Table 2)'),
    Claim('fig9_layers',
          text=(
              'Within one pre-trained model, layers whose output features are more collapsed on the downstream data'
              ' give better linear transfer.'),
          where=(
              'Section 3.2, Fig. 9'),
          paper=(
              "Fig. 9: NC1 of each block's features on Cifar-10 falls and the layer's linear-probe accuracy rises "
              'towards the output (ResNet34, ViT-B/32)'),
          chapter=4, short='collapsed layers probe better (Fig. 9)'),
    Claim('fig10_depth',
          text=(
              'Fine-tuning a layer closer to the output usually leads to more collapsed penultimate features and '
              'better transfer accuracy.'),
          where=(
              'Section 3.3, Fig. 10; Tables 5-7'),
          paper=(
              "Fig. 10 and Tables 5-7: accuracy mostly rises and NC1 mostly falls with the fine-tuned block's depth"),
          chapter=5, short='deeper block, better (Fig. 10)'),
    Claim('table3_layer',
          text=(
              'Fine-tuning one intermediate layer (Layer FT) gives substantial gains over linear probing on a '
              'variety of datasets.'),
          where=(
              'Section 3.3, Table 3'),
          paper=(
              'Table 3: Layer FT beats linear probing in 12 of its 13 cells, by 0.14 (ResNet50, Oxford-IIIT-Pet) to'
              ' 28.42 points (ResNet18, FGVC-Aircraft); the gains on Oxford-IIIT-Pet are small (0.14-1.64 points), '
              'and for ResNet50 on DTD Layer FT is below linear probing (67.66 vs 68.46)'),
          chapter=5, short='Layer FT beats probing (Table 3)'),
    Claim('table3_scl',
          text=(
              'SCL FT outperforms Layer FT and achieves comparable or better results than full fine-tuning on '
              'various datasets.'),
          where=(
              'Section 3.3, Table 3'),
          paper=(
              'Table 3: SCL FT ≥ Layer FT in 12 of 13 cells (ViT-B on FGVC-Aircraft: 65.80 vs 65.83); against full '
              'FT, SCL FT is above it in every Cifar-10, DTD and Oxford-IIIT-Pet cell and on FGVC-Aircraft for '
              'ViT-B (65.80 vs 64.66), only 0.56 below it for ResNet50 on Cifar-100, and 4.30 (ResNet18, Cifar-100)'
              ' to 10.05 points (ResNet50, FGVC-Aircraft) below it in the other three cells'),
          chapter=5, short='SCL FT ≥ Layer FT, ~ full FT (Table 3)'),
    Claim('parameters',
          text=(
              'Layer FT and SCL FT fine-tune at least 70% fewer parameters than full fine-tuning (arXiv text; the '
              'TMLR version says at least 90%).'),
          where=(
              'Abstract; Section 3.3; Table 3'),
          paper=(
              'Table 3: 6-8% of the parameters for the middle blocks (Block 5 of ResNet18, Block 8 of ResNet50, '
              'Layer 8 of ViT-B/32)'),
          chapter=5, short='≥ 70% fewer parameters (Table 3)'),
    Claim('fig11_scarce',
          text=(
              'With scarce downstream data, Layer FT and SCL FT alleviate the overfitting of full fine-tuning: they'
              ' "remain robust and outperform full model FT" when there are few samples per class.'),
          where=(
              'Section 3.3, Fig. 11'),
          paper=(
              'Fig. 11: on Cifar-10 subsets, SCL FT and Layer FT beat full FT at the smallest sizes'),
          regime=(f'full fine-tuning overfits at those sizes: at least {TERMINAL:g}% training accuracy with test '
                  'accuracy at least 10 points lower'),
          chapter=5, short='scarce data: Layer, SCL FT hold (Fig. 11)'),
    Claim('ncti_rank',
          text=(
              'NCTI ranks pre-trained models by their transferability better than the scores it is compared with: '
              'its ranking correlates with the ground-truth ranking of transfer accuracy, more closely than LogME, '
              'LEEP, N-LEEP, PARC, SFDA and the others do, across target sets.'),
          where=(
              "NCTI (Wang et al., ICCV 2023), Table 1; the write-up's re-run of the authors' code"),
          paper=(
              "weighted Kendall τ 0.843 for 11 supervised ImageNet models on Cifar-10 (the write-up's re-run of the"
              " authors' code, which matched the NCTI paper), the best of the scores in the NCTI paper's Table 1"),
          chapter=6, short='NCTI ranks best (NCTI Table 1)'),
]

CLAIMS: dict[str, Claim] = {c.key: c for c in _CLAIMS}
if len(CLAIMS) != len(_CLAIMS):
    raise RuntimeError("claim keys must be unique.")
