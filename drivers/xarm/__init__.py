"""UFACTORY xArm 5/6/7 and Lite 6 through ``xarm-python-sdk`` (extra ``xarm``)."""
