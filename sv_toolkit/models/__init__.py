"""Speaker-embedding extractors: ResNet, RevNet (Type I / II), DF-ResNet, DF-RevNet.

``build_model(name, **overrides)`` builds any registered name; ``available_models()`` lists them.
Importing the model modules below registers their names.
"""

from sv_toolkit.models import dfresnet, dfrevnet, resnet, revnet  # noqa: F401  (import registers names)
from sv_toolkit.models.checkpointing import set_gradient_checkpointing
from sv_toolkit.models.registry import available_models, build_model, register_model

__all__ = ["available_models", "build_model", "register_model", "set_gradient_checkpointing"]
