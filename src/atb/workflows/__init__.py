"""Use cases, each a readable script of library calls: train one model, production
(bases + ensemble), walk-forward evaluation, tuning.

Workflows import the library rooms; the library never imports a workflow.
"""
