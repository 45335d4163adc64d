"""The book's generated pages, composed from the chapters' records: Markdown text and figures.

Every function takes plain data (chapter records as read from their JSON, verdicts, calibrations, paths) and
returns a page's text or writes a figure; the runner (:mod:`ncutils.book.runner.site`) reads the records,
calls these and stages what they return. Nothing here imports the runner.

==================  ===============================================================================
module              job
==================  ===============================================================================
``claims``          "Claims at a glance": every claim's verdict, the check that decided it, replication
``forest``          the claims page's forest plot: every deciding estimate on one scale
``rules``           "How the verdicts are decided": each rule's words, digest and calibration
``runs``            "About this build": the machine and every chapter's status, time and memory
``placeholder``     the page of a chapter not run yet in a profile
``names``           display names of networks, fine-tuning methods and NCTI's terms
==================  ===============================================================================

This ``__init__`` imports nothing.
"""
