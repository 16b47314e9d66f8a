"""Adapters behind the ``Store`` protocol: an OCI image layout folder and a registry."""
