"""Exceptions with messages meant for the person at the keyboard.

Every error the library raises on bad input derives from :class:`L3LocatorError`, so the CLI,
the batch script and the Slicer modules can catch one type and show its one-line message.
"""


class L3LocatorError(Exception):
    """Base class: bad input or a failed job, with a message a user can act on."""


class InputError(L3LocatorError):
    """The input scan cannot be used (unreadable, not CT, too few slices, inconsistent...)."""


class ModelFileError(L3LocatorError):
    """A model file is missing, corrupt or incompatible with this version."""


class LabelError(L3LocatorError):
    """An annotation (label) file is missing, invalid, or would overwrite an existing one."""
