"""3Dconnexion SpaceMouse through raw HID reports with ``hidapi`` (extra ``spacemouse``)."""
