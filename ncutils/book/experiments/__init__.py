"""The book's experiments as unit kinds: each is a function of one complete configuration.

**The signature is the schema** (scikit-learn's rule). A kind is a function ``fn(ctx, *, argument: type =
default, ...)``: the context, then keyword-only, annotated arguments named exactly as the configuration's
keys. Their annotations say what each takes (int, float, str, bool, dict, list, ``X | None``), their
defaults are the only defaults (no ``cfg.get(key, default)`` in a body), and nothing else documents the
configuration's fields. :class:`~ncutils.book.engine.units.Unit` checks a configuration against the
signature when the unit is made (a misspelt key, a missing argument or a value of the wrong type is a
``ValueError`` naming the kind and the argument) and stores it complete, defaults applied; the engine then
calls ``fn(ctx, **unit.config)``. The modules' docstrings say what the arguments mean.

Every module here registers kinds with :func:`ncutils.book.engine.units.kind`, and each is fingerprinted
on its own (with the library code it imports), so changing one experiment leaves the stored results
of the others valid. This package's ``__init__`` imports nothing for the same reason.

==============  ======================================================================  =================
module          kinds                                                                   paper
==============  ======================================================================  =================
``metrics``     ``nc_constructed``, ``nc_surrogates``, ``nc1_cost``, ``nc_streaming``    Sec. 2.3, App. A
``sources``     ``pretrain`` (a source model; stores its network)                        Sec. 3.1, App. B
``probing``     ``probe``, ``layerwise_probe``, ``layer_nc``                             Sec. 2.4, 3.1-3.2
``fewshot``     ``fewshot_eval``                                                         Table 2
``finetuning``  ``finetune``, ``param_percentages``                                      Sec. 3.3
``scores``      ``transfer_scores``                                                      NCTI
==============  ======================================================================  =================
"""
