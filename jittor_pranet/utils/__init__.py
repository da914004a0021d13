"""Small shared helpers: atomic file writes (``io``) and an OpenCV line-chart renderer (``plot``)."""
