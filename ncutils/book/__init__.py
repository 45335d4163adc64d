"""The book machinery: chapters as grids of units, their store, the runner and the pages.

The research library (``ncutils.metrics``, ``features``, ``models``, ``data``, ``transforms``,
``pretrain``, ``finetune``, ``fewshot``, ``transferability``, ...) never imports this package; this
package imports it.

==================  ===============================================================================
module              job
==================  ===============================================================================
``units``           :class:`Unit`: one experiment's kind and complete configuration; its key
``store``           one file per unit result, written atomically, checked on reading
``compute``         computing a unit (its dependencies first) or reusing its stored result
``experiments``     the unit kinds: pre-training, probing, few-shot, fine-tuning, scores, metrics
``datasets``        dataset specs: the complete description of the images a unit uses
``networks``        network and backbone specs
``profiles``        smoke / cpu / paper: the data, networks and recipe of each scale
``grids``           each chapter's units as a function of its parameters
``chapter``         what a notebook holds: its grid, context and results record
``plan``            the units of a run, their cost; ``preflight`` checks the inputs; ``executors``
                    computes units with submitit (locally or on Slurm)
``notebooks``, ``site``, ``cli``  executing chapters with papermill, building the book, the command line
``plotting``, ``verdicts``, ``published``   figures, verdicts, and the paper's printed numbers
==================  ===============================================================================

This ``__init__`` imports nothing, so that a unit kind's code fingerprint covers only what it runs.
"""
