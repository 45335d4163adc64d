"""Short names of the book's claims (:mod:`ncutils.book.claims`), for the claims page's forest plot and the
one-sentence summaries that open the chapters."""

from __future__ import annotations

__all__ = ["SHORT"]

#: ``{claim key: short name}``; a claim without one is named by where the paper makes it.
SHORT = {"nc1_metric": "NC1 measures collapse (Eq. 4)", "surrogates": "CDNV, rank order like NC1 (App. A)",
         "progressive": "NC1 falls layer by layer (Fig. 2)", "table1": "less source collapse transfers (Table 1)",
         "fig3_heads": "projection heads help (Fig. 3)", "fig4_threshold": "only up to a threshold (Fig. 4)",
         "random_features": "random features transfer poorly",
         "fig5_downstream": "downstream collapse helps (Figs. 5-6)",
         "table2_fewshot": "few-shot follows NC1 (Table 2)", "fig9_layers": "collapsed layers probe better (Fig. 9)",
         "fig10_depth": "deeper block, better (Fig. 10)", "table3_layer": "Layer FT beats probing (Table 3)",
         "table3_scl": "SCL FT ≥ Layer FT, ~ full FT (Table 3)", "parameters": "≥ 70% fewer parameters (Table 3)",
         "fig11_scarce": "scarce data: SCL FT holds (Fig. 11)", "ncti_rank": "NCTI ranks best (NCTI Table 1)"}

