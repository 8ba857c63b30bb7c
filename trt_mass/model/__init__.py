"""PyTorch side: the RetinaNet network, the engine graph around it, checkpoints.  Imports torch."""
