"""Reading mammograms: DICOM (dicom), research rasters (raster), and which files a run takes (files).

Every reader returns a Mammogram: uint16 [H, W], dense tissue bright, with the UIDs and spacing that
findings need and no patient data.  See docs/architecture.md.
"""
