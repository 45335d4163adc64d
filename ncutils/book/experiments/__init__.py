"""The book's experiments as unit kinds: each is a function of one complete configuration.

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
