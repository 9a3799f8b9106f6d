"""Sends one edit to the exported model behind TF Serving and writes the PNG.

  # REST (TF Serving on port 8501, model name leed)
  python scripts/serve_client.py --input=me.jpg --reference=smile.jpg --output=out.png
  python scripts/serve_client.py --input=me.jpg --expression=happy --server=http://gpu-box:8501
  # gRPC (port 8500; needs pip install tensorflow-serving-api==<your TensorFlow version>)
  python scripts/serve_client.py --input=me.jpg --reference=smile.jpg --grpc=localhost:8500
  # the same JSON request, answered in-process by the SavedModel (no server)
  python scripts/serve_client.py --input=me.jpg --reference=smile.jpg --local=saved_models/leed
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from leed_tf import cli  # noqa: E402
from leed_tf.inference import clients  # noqa: E402

_INPUT = flags.DEFINE_string("input", None, "Input image (JPEG or PNG).", required=True)
_REFERENCE = flags.DEFINE_string("reference", None, "Reference image whose expression is copied.")
_EXPRESSION = flags.DEFINE_string("expression", None, "Or an expression name of the export's bank.")
_INTENSITY = flags.DEFINE_float("intensity", 1.0, "Expression intensity: 1 = the reference's, 0 = neutral.")
_OUTPUT = flags.DEFINE_string("output", "edited.png", "Where to write the edited PNG.")
_SERVER = flags.DEFINE_string("server", f"http://localhost:{clients.REST_PORT}", "TF Serving's REST address.")
_GRPC = flags.DEFINE_string("grpc", None, "Use gRPC at this host:port instead of REST.")
_LOCAL = flags.DEFINE_string("local", None, "Answer in-process from this SavedModel instead of a server.")
_MODEL = flags.DEFINE_string("model", clients.DEFAULT_MODEL, "Model name on the server.")
_VERSION = flags.DEFINE_integer("version", None, "Model version (default: the server's latest).")
_TIMEOUT = flags.DEFINE_float("timeout", 60.0, "Seconds to wait for the server.")
_INPUT_NEUTRAL = flags.DEFINE_string("input_neutral", None, "The input's real neutral face "
                                     "(models trained with --neutral_source=dataset).")
_REFERENCE_NEUTRAL = flags.DEFINE_string("reference_neutral", None, "The reference's real neutral face.")


def main(argv):
    del argv
    if (_REFERENCE.value is None) == (_EXPRESSION.value is None):
        raise app.UsageError("Give exactly one of --reference or --expression.")
    mode = "local" if _LOCAL.value else "grpc" if _GRPC.value else "rest"
    path = clients.edit_request(
        _INPUT.value, _OUTPUT.value, reference_path=_REFERENCE.value, expression=_EXPRESSION.value,
        intensity=_INTENSITY.value, mode=mode, server=_SERVER.value, grpc_target=_GRPC.value,
        local_export=_LOCAL.value, model=_MODEL.value, version=_VERSION.value, timeout=_TIMEOUT.value,
        input_neutral_path=_INPUT_NEUTRAL.value, reference_neutral_path=_REFERENCE_NEUTRAL.value)
    print(f"Wrote {path} ({mode})")


if __name__ == "__main__":
    cli.run(main)
