"""Labelled images for train, eval, calib and compare: data sets on disk (labelled) and the project's
own synthetic MG DICOM phantoms (synth).
"""
