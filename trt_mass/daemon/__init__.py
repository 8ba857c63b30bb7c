"""The reading-room daemon: `trtmass watch` turns files dropped into a folder into results."""
