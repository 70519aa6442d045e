"""The register tests' tiny exported model, shared by the fine-tuning tests."""

from tests.tasks.register.conftest import tiny_model  # noqa: F401
