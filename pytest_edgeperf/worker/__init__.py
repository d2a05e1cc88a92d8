"""Both sides of the worker protocol, side by side (as pyperf's ``_manager`` / ``_worker``).

``child`` runs in the measured process (``python -m pytest_edgeperf.worker``); ``client`` is the parent's handle on
it; ``paired`` drives two of them in turns (an A/B comparison); ``callables`` loads the user's ``module:function``
references in the child. Nothing here is imported on package import: the child must stay free of the parent side.
"""
