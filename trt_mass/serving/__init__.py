"""Serving the engine graph from Triton Inference Server: repositories (triton-repo) and `trtmass serve`."""
