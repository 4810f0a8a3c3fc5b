"""The built-in detector families, one module each; importing this package registers them (``networks`` does).

A new family is one more module here (its ``register`` calls) and its import below.
"""

# Registration order is the names' order in --arch's help: the paper's family first.
from networks.families import resnet, torchvision, npr, univfd  # noqa: I001

__all__ = ["npr", "resnet", "torchvision", "univfd"]
