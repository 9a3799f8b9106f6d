"""Pretrained weight files, found locally: nothing is downloaded at run time.

Keras keeps the files ``keras.applications`` downloads in its cache,
``$KERAS_HOME/models``, then ``~/.keras/models``, then ``/tmp/.keras/models``
(its fallback). Code that needs one (the encoder's ImageNet VGG-19, FID's
InceptionV3) takes an explicit path or looks there, and otherwise says
precisely which file it needs and where it looked.
"""

from __future__ import annotations

import os


def keras_cache_paths(filename: str) -> list[str]:
    """Where Keras caches ``filename``, in the order Keras itself looks."""
    homes = []
    if os.environ.get("KERAS_HOME"):
        homes.append(os.environ["KERAS_HOME"])
    homes += [os.path.join(os.path.expanduser("~"), ".keras"), os.path.join("/tmp", ".keras")]
    return [os.path.join(home, "models", filename) for home in homes]


def find_weights_file(filename: str, path: str, needed_for: str, advice: str) -> str:
    """Returns ``path`` if it is a file, else (``path`` empty) the first copy
    of ``filename`` in the Keras cache.

    Args:
      filename: Keras' name of the file, e.g. ``vgg19_..._notop.h5``.
      path: An explicit file; when empty the Keras cache is searched.
      needed_for: What needs it and where the file comes from, for the
        message (``"The encoder needs Keras' file ..."``).
      advice: How to provide it or do without (flags), for the message.

    Raises:
      FileNotFoundError: naming the file needed and every place looked in.
    """
    candidates = [path] if path else keras_cache_paths(filename)
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"{needed_for} Looked in: {', '.join(candidates)}. {advice} "
                            f"Nothing is downloaded at run time.")
