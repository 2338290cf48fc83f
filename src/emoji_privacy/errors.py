"""Exceptions with messages meant for the user: what is wrong and what to do."""


class EmojiPrivacyError(Exception):
    """Base class of the project's errors."""


class ModelFileError(EmojiPrivacyError):
    """A model file is missing, corrupt, or does not match what the code expects."""


class ImageFormatError(EmojiPrivacyError):
    """An image cannot be decoded (unknown encoding, wrong size or step, empty data)."""


class ConfigError(EmojiPrivacyError):
    """A configuration value or parameter is invalid."""


class SourceError(EmojiPrivacyError):
    """A camera, video, folder or stream source cannot be opened or read."""


class BagError(EmojiPrivacyError):
    """A bag file cannot be read or does not hold what a tool needs."""
