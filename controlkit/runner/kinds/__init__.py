"""The built-in experiment kinds, one module each; every module defines ``KIND`` (an
:class:`~controlkit.runner.registry.ExperimentKind`), looked up by name through :mod:`controlkit.runner.registry`."""
