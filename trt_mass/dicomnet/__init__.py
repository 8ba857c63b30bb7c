"""The DICOM node: a storage SCP beside the folder watcher, and an on-disk outbox that delivers results."""
