"""tensorrnn: the expressive power of recurrent networks written as tensor networks."""

import os

# Same numbers on every x86-64 machine: ATen picks its vectorised CPU kernels by the CPU
# (AVX2 or AVX-512), and their different rounding moves a float32 training run's
# accuracies (measured: the committed quick sweep, made on an AVX2 machine, re-ran 0 of
# 12 runs exactly on an AVX-512 machine, 12 of 12 with this pin). ATen reads the variable
# at its first kernel, so it is set before this package can run one; a value the user
# set wins, and every run records the capability it ran with (runfolder.session_facts).
os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
PINNED_CPU_CAPABILITY = "AVX2"
"""What ``torch.backends.cpu.get_cpu_capability()`` reports under the pin."""

from tensorrnn.errors import TensorRNNError  # noqa: E402

__version__ = "0.1.0"

__all__ = ["PINNED_CPU_CAPABILITY", "TensorRNNError", "__version__"]
