"""tensorrnn: the expressive power of recurrent networks written as tensor networks."""

from tensorrnn.errors import TensorRNNError

__version__ = "0.1.0"

__all__ = ["TensorRNNError", "__version__"]
