"""Franka Emika Panda / FR3 through ``franky-control`` (extra ``franka``)."""
