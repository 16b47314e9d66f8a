"""A greeting, installed from an OCI registry."""

__all__ = ["greeting", "main"]


def greeting(name: str = "an OCI registry") -> str:
    """The greeting this package exists to print."""
    return f"Hello from {name}!"


def main() -> None:
    print(greeting())
