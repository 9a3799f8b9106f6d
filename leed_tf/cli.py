"""How every script in scripts/ reports bad input: one line, exit status 2.

Each script ends with ``cli.run(main)`` instead of ``absl.app.run(main)``.
A bad input (a missing or unreadable file, a corrupt image, an unknown name,
a flag value out of range, a malformed flag) becomes ONE line on stderr,

    error: <file or thing>: <what is wrong>

and exit status 2, without a traceback. ``--verbose`` prints the full
traceback instead (still exit status 2). Ctrl-C prints one line and exits
with 130. ``SystemExit`` passes through untouched.

Only the exception types the code raises *for bad input* are caught (see
``input_errors``): ``OSError``'s file kinds, ``ValueError`` (which covers
``BadImageError`` and ``UnknownExpressionError``), ``KeyError``, PIL's
``UnidentifiedImageError`` / ``DecompressionBombError``, TensorFlow's
``InvalidArgumentError`` / ``NotFoundError`` and absl's ``UsageError`` and
flag errors. Any other exception is a bug, not bad input: it keeps its
traceback (absl's exit status 1) so that it gets reported and fixed rather
than disguised as the user's mistake. Nothing is cleaned up on an error:
outputs already written stay where they are.

This module imports nothing heavy at its top: TensorFlow's and PIL's error
types are looked up only if those libraries were already imported.
"""

from __future__ import annotations

import sys
import traceback
import warnings
from typing import Callable

from absl import app, flags

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

if "verbose" not in flags.FLAGS:
    flags.DEFINE_boolean("verbose", False, "On an error, print the full traceback instead of one line.")


# Raised on purpose with a message for people: a server that refuses or
# cannot be reached, a training run whose loss diverged (checkpoint kept).
_PROJECT_ERRORS = (("leed_tf.inference.clients", "ServingError"),
                   ("leed_tf.training.base", "NonFiniteLossError"))


def input_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean bad input (see the module docstring)."""
    types: list[type[BaseException]] = [FileNotFoundError, NotADirectoryError, IsADirectoryError,
                                        PermissionError, ValueError, KeyError, app.UsageError,
                                        flags.Error]
    pil = sys.modules.get("PIL.Image")
    if pil is not None:
        types += [pil.UnidentifiedImageError, pil.DecompressionBombError, pil.DecompressionBombWarning]
    tf_errors = getattr(sys.modules.get("tensorflow"), "errors", None)
    if tf_errors is not None:
        types += [tf_errors.InvalidArgumentError, tf_errors.NotFoundError]
    # The project's own errors for people (looked up, not imported: no cycle).
    for module, name in _PROJECT_ERRORS:
        error = getattr(sys.modules.get(module), name, None)
        if error is not None:
            types.append(error)
    return tuple(types)


def message(error: BaseException) -> str:
    """One line saying what is wrong, naming the file where the error knows it."""
    if isinstance(error, KeyError) and len(error.args) == 1:
        text = str(error.args[0])  # str(KeyError("x")) is "'x'", quoted.
    elif isinstance(error, OSError) and error.strerror:
        text = error.strerror
        if error.filename is not None:
            text = f"{error.filename}: {text}"
    else:
        text = getattr(error, "message", None) if _is_tf_error(error) else None
        text = text or str(error)
    filename = getattr(error, "filename", None)
    if filename is not None and str(filename) not in text:
        text = f"{filename}: {text}"
    text = " ".join(text.split())  # One line, whatever the message held.
    return text or type(error).__name__


def _is_tf_error(error: BaseException) -> bool:
    tf_errors = getattr(sys.modules.get("tensorflow"), "errors", None)
    return tf_errors is not None and isinstance(error, tf_errors.OpError)


def _fail(error: BaseException | None, text: str, status: int):
    if error is not None and flags.FLAGS.is_parsed() and flags.FLAGS["verbose"].value:
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    else:
        print(f"error: {text}", file=sys.stderr)
    sys.stderr.flush()
    sys.exit(status)


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a malformed flag as one line (absl's own
    prints usage and exits 1)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        _fail(None, message(e), EXIT_BAD_INPUT)


def run(main: Callable[[list[str]], object]) -> None:
    """Runs ``main`` through absl, bad input reported as one line, exit 2."""
    try:
        from PIL import Image
        # PIL warns between MAX_IMAGE_PIXELS and twice that; refuse instead.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
    except ImportError:  # pragma: no cover - PIL is a dependency.
        pass

    def guarded(argv):
        try:
            return main(argv)
        except KeyboardInterrupt as e:
            _fail(e, "interrupted", EXIT_INTERRUPTED)
        except input_errors() as e:
            _fail(e, message(e), EXIT_BAD_INPUT)

    app.run(guarded, flags_parser=_parse_flags)
