"""Universal Robots (CB3 and e-Series) through ``ur-rtde`` (extra ``ur``)."""
