"""User-facing errors: the CLI prints their message as one line and exits non-zero."""


class CodecAssistError(Exception):
    """A problem with the user's input or request (not a bug). The message is one line, shown as is."""

    exit_code = 2


class InputError(CodecAssistError):
    """The input file is missing, unreadable, or not a usable video."""


class SchemaError(CodecAssistError):
    """A JSON/npz artifact does not validate against its schema."""


class EncoderError(CodecAssistError):
    """An encoder option or combination is invalid, or the encoder failed."""
