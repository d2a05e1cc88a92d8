"""``EdgeperfError``: the base of every error this package raises on purpose.

Why a base: each of these errors is a one-line message naming the option, file or input at fault, meant for a
user rather than a traceback; a caller (the plugin's hooks, the ``edgeperf`` command) can print every one of them
in one place with ``except EdgeperfError``. Each subclass keeps the builtin base older callers catch (``ValueError``,
``RuntimeError``) as its second base, so no existing ``except`` changes meaning.
"""


class EdgeperfError(Exception):
    """An error of pytest-edgeperf with a one-line message for the user."""
