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


def options_error(e, flags: dict[str, str] | None = None) -> CodecAssistError:
    """A pydantic ValidationError from building typed options, as one line naming the field (or, with
    `flags`, the command-line flag it came from)."""
    err = e.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    name = (flags or {}).get(field, field) if field else ""
    msg = str(err["msg"]).removeprefix("Value error, ")
    return CodecAssistError(f"{name}: {msg}" if name and not msg.startswith("-") else msg)
