"""UVC webcams and video files through OpenCV (``opencv-python-headless``)."""
