"""Training a project's model from its curated labels, without Django: the
pixel classifier (pixel_classifier.py), which pixels are known
(targets.py), and the validation figures every kind reports (validation.py)."""
