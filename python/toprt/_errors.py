"""The errors toprt raises. Every one is a :class:`toprt.Error`; the message is the
engine's own (it names the input, file, tensor or option at fault)."""


class Error(Exception):
    """Base class of every error toprt raises."""


class InputError(Error, ValueError):
    """Bad input or options: a wrong type, an empty batch, a token id outside the
    vocabulary, text for a model without a tokenizer, an invalid option. The model and
    session stay usable."""


class ModelError(Error):
    """A model file that cannot be used: missing, unreadable, corrupt (checksum), of an
    unsupported version, or with a broken tensor or tokenizer."""


class ConvertError(Error):
    """The converter refused a checkpoint or its options."""


class CommandError(Error):
    """A ``python -m toprt`` command (or :func:`toprt.calibrate`) failed; its message is
    what the command printed on stderr."""
