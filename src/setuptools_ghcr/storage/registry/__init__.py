"""The OCI distribution API over requests: credentials, challenges, transport, store."""
