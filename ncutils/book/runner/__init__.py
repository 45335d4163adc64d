"""The runner: ``python -m ncutils.book`` and what it does.

==================  ===============================================================================
module              job
==================  ===============================================================================
``cli``             the command line: parse, plan, check, compute the units, run the chapters, build
``chapters``        the chapter notebooks of ``_toc.yml``, their numbers and titles
``parameters``      what papermill injects into each chapter (settings: :mod:`ncutils.book.settings`)
``plan``            the units of a run and their estimated cost (``--plan``)
``preflight``       every dataset and weight file a run needs, checked before computing (``--check``)
``executors``       computing units with submitit: on this machine (``local``) or on Slurm
``execute``         executing one chapter with papermill in a child process
``interrupts``      SIGINT and SIGTERM as one exception; the runner's child processes, stopped with it
``site``            staging the book source and building it with Jupyter Book
==================  ===============================================================================

The paper-shaped dry run (``--dry-run``) is a transform of units, :mod:`ncutils.book.engine.dryrun`.
"""
