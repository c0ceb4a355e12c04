"""Hardware drivers: cameras, arms and teleop devices (one subpackage per device).

SDKs are imported lazily inside each driver, so ``import robolearn.drivers`` never needs one.
"""
