"""What the faces ask for: publish, resolve and download, install, inspect."""
