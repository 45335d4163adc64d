"""The book's engine: experiments as keyed units, their store, and computing them.

==================  ===============================================================================
module              job
==================  ===============================================================================
``units``           :class:`~ncutils.book.engine.units.Unit`: one experiment's kind and complete
                    configuration, checked against the kind's signature; its key; the registry of kinds
``fingerprint``     the ``ncutils`` code a kind (or a chapter) can run, and its hash
``store``           one file per unit result, written atomically, checked on reading
``compute``         computing a unit (its dependencies first) or reusing its stored result
``dryrun``          the paper-shaped dry run: units (and whole grids) rewritten onto synthetic
                    stand-ins and random weights, a step or two each (``--dry-run``)
==================  ===============================================================================

The engine decides which units run and where their results go, never what a unit computes: unit kinds
(:mod:`ncutils.book.experiments`) import only its declarations (``kind``, ``Unit``), so a change here
recomputes nothing (a change to ``dryrun`` changes the configurations, hence the keys, of dry-run units
only). This ``__init__`` imports nothing.
"""
