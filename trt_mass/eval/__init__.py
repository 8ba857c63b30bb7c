"""Evaluation: FROC analysis of detections against ground-truth boxes (NumPy only)."""
