"""The book's engine: experiments as keyed units, their store, and computing them.

==================  ===============================================================================
module              job
==================  ===============================================================================
``units``           :class:`~ncutils.book.engine.units.Unit`: one experiment's kind and complete
                    configuration; its key; the registry of kinds
``fingerprint``     the ``ncutils`` code a kind (or a chapter) can run, and its hash
``store``           one file per unit result, written atomically, checked on reading
``compute``         computing a unit (its dependencies first) or reusing its stored result
==================  ===============================================================================

The engine decides which units run and where their results go, never what a unit computes: unit kinds
(:mod:`ncutils.book.experiments`) import only its declarations (``kind``, ``Unit``), so a change here
recomputes nothing. This ``__init__`` imports nothing.
"""
