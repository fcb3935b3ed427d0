"""Exceptions that the CLI turns into one-line messages (no traceback unless --debug)."""


class UserError(Exception):
    """A problem the user can fix: bad path, bad config value, unreadable file, ..."""


class ItemError(UserError):
    """One input item (an image, a mask) failed; batch commands report it and go on."""
