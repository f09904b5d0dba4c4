"""Dynamics models: transition data from an environment, dense ReLU training, neuron-level sparsification, and
the compact network (numpy, versioned file) that the MILP compiler reads.

The flow is ``collect`` -> ``train_dense``/``fit`` -> ``sparsify`` -> ``export_compact`` -> :class:`CompactNetwork`.
torch is imported only when a torch-backed name is first used.
"""

from controlkit.core.lazy import lazy_getattr
from controlkit.models.graph import GraphNetwork
from controlkit.models.network import CompactNetwork

_LAZY = {
    **dict.fromkeys(
        ["TransitionData", "CorrelatedNoiseController", "collect", "concatenate", "load_dataset", "save_dataset", "make_env",
         "make_behaviour"],
        "controlkit.models.data",
    ),
    **dict.fromkeys(
        ["DynamicsModel", "FitResult", "TrainSettings", "fit", "polish", "rollout_mse", "train_dense"],
        "controlkit.models.dynamics",
    ),
    **dict.fromkeys(
        ["SparsifySettings", "SparsifyResult", "sparsify", "export_compact", "select_operating_point"],
        "controlkit.models.sparsify",
    ),
    **dict.fromkeys(["StabilitySettings", "stabilise"], "controlkit.models.stability"),
    **dict.fromkeys(["GraphDynamics", "export_graph"], "controlkit.models.graph_training"),
}
__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = ["CompactNetwork", "GraphNetwork", *_LAZY]
