"""What one detection becomes on disk: the result JSON, the overlay picture and the DICOM objects.

results.write_result is the one output step that detect, watch and bench all end in.  See
docs/architecture.md.
"""
