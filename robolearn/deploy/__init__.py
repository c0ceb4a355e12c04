"""Running checkpoints on a cell: the deploy gate with shadow and live modes (``gate``), the cell's
devices (``devices``), Real-is-Sim mirroring of the real arm in the twin (``mirror``) and real trials
recorded for ``robolearn compare`` (``real_trials``). Twin evaluation itself is ``robolearn.evaluate``."""
