"""The book machinery: chapters as grids of units, their store, the runner and the pages.

The research library (``ncutils.metrics``, ``features``, ``models``, ``data``, ``transforms``,
``pretrain``, ``finetune``, ``fewshot``, ``transferability``, ...) never imports this package; this
package imports it.

==================  ===============================================================================
module              job
==================  ===============================================================================
``engine``          units keyed by configuration and code, their fingerprints, store and computation
``experiments``     the unit kinds: pre-training, probing, few-shot, fine-tuning, scores, metrics
``datasets``        dataset specs: the complete description of the images a unit uses
``networks``        network and backbone specs, and rebuilding the networks units trained
``settings``        every chapter's settings, declared once with types, defaults and ranges
``profiles``        smoke / cpu / paper: the data, networks and recipe of each scale
``grids``           each chapter's units as a function of its settings
``chapter``         a notebook's thin view of its settings, grid, store and results record
``claims``          every claim of the paper with its rule; ``verdicts`` judges them
``plotting``, ``diagrams``, ``published``   figures, drawn diagrams, and the paper's printed numbers
``pages``           the generated pages (claims, rules, this build) composed from the chapters' records
``runner``          ``python -m ncutils.book``: plan, check, compute, execute chapters, build the book
==================  ===============================================================================

Only the runner imports the runner: the modules above are layers it calls (``tests/test_layers.py``).

This ``__init__`` imports nothing, so that a unit kind's code fingerprint covers only what it runs.
"""
