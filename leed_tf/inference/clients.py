"""Clients of the exported model behind TensorFlow Serving (docs/serving.md).

* REST: ``build_predict_body`` writes TF Serving's documented *columnar*
  request, ``{"signature_name": ..., "inputs": {name: [values]}}``, with
  binary values (the encoded images) as ``{"b64": "<base64>"}``;
  ``rest_predict`` POSTs it to ``http://HOST:8501/v1/models/leed:predict``
  with ``urllib`` and ``decode_outputs`` turns the reply's ``{"b64": ...}``
  values back into bytes. TF Serving base64-encodes a string output only when
  its name ends in ``_bytes``: hence ``output_png_bytes``.
* gRPC: ``grpc_predict`` through ``tensorflow-serving-api`` (optional:
  ``pip install tensorflow-serving-api==<your TensorFlow version>``).
* Local: ``LocalPredictor`` answers the same JSON requests in-process from the
  SavedModel, following TF Serving's JSON rules; ``serve_local`` puts it
  behind a small ``http.server`` on 127.0.0.1 (a development stand-in for
  TF Serving, used by the tests; not a production server).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Mapping, Sequence

import numpy as np

DEFAULT_MODEL = "leed"
DEFAULT_SIGNATURE = "serving_default"
REST_PORT, GRPC_PORT = 8501, 8500
BASE64_KEY = "b64"
BYTES_SUFFIX = "_bytes"
_GRPC_HINT = ("gRPC needs tensorflow-serving-api: pip install tensorflow-serving-api==<your TensorFlow "
              "version> (it must not change the TensorFlow version).")


class ServingError(RuntimeError):
    """The server refused a request; ``str()`` is its error message."""


# ---------------------------------------------------------------- requests


def b64(data: bytes) -> dict:
    """Binary data in TF Serving's JSON form, ``{"b64": "<base64>"}``."""
    return {BASE64_KEY: base64.b64encode(bytes(data)).decode("ascii")}


def _json_values(values):
    if isinstance(values, (bytes, bytearray, memoryview)):
        return b64(values)
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "SO":
            return [_json_values(v) for v in values.tolist()]
        return values.tolist()
    if isinstance(values, (list, tuple)):
        return [_json_values(v) for v in values]
    if isinstance(values, np.generic):
        return values.item()
    return values


def build_predict_body(inputs: Mapping[str, object], signature_name: str = DEFAULT_SIGNATURE) -> dict:
    """TF Serving's columnar predict request.

    Args:
      inputs: Input name -> a list (the batch) of values: ``bytes`` (sent as
        ``{"b64": ...}``), numbers, strings, or arrays.
      signature_name: The signature to run.

    Returns:
      ``{"signature_name": ..., "inputs": {name: [...], ...}}``.
    """
    return {"signature_name": signature_name,
            "inputs": {name: _json_values(value) for name, value in inputs.items()}}


def edit_inputs(input_images: Sequence[bytes], reference_images: Sequence[bytes] | None = None,
                intensity=1.0, *, expressions: Sequence[str] | None = None,
                input_neutrals: Sequence[bytes] | None = None,
                reference_neutrals: Sequence[bytes] | None = None) -> tuple[str, dict]:
    """The signature and inputs of an edit from encoded images.

    Reference images give ``serving_default``; expression names give
    ``edit_with_expression`` (the export's embedded bank). Neutral faces are
    for models without a neutralizer.

    Returns:
      ``(signature_name, inputs)`` for ``build_predict_body`` or ``grpc_predict``.
    """
    if (reference_images is None) == (expressions is None):
        raise ValueError("Give reference images or expression names (exactly one).")
    values = np.asarray(intensity, np.float64).reshape(-1)
    values = np.repeat(values, len(input_images)) if len(values) == 1 else values
    inputs = {"input_image": [bytes(x) for x in input_images]}
    if input_neutrals is not None:
        inputs["input_neutral"] = [bytes(x) for x in input_neutrals]
    if expressions is not None:
        inputs["expression"] = [str(e) for e in expressions]
        signature = "edit_with_expression"
    else:
        inputs["reference_image"] = [bytes(x) for x in reference_images]
        if reference_neutrals is not None:
            inputs["reference_neutral"] = [bytes(x) for x in reference_neutrals]
        signature = DEFAULT_SIGNATURE
    inputs["intensity"] = [float(v) for v in values]
    return signature, inputs


def predict_url(server: str = f"http://localhost:{REST_PORT}", model: str = DEFAULT_MODEL,
                version: int | None = None) -> str:
    """``<server>/v1/models/<model>[/versions/<version>]:predict``."""
    server = server if "://" in server else "http://" + server
    versioned = f"/versions/{int(version)}" if version is not None else ""
    return f"{server.rstrip('/')}/v1/models/{model}{versioned}:predict"


def post_json(url: str, body: dict, timeout: float = 60.0) -> dict:
    """POSTs ``body`` as JSON and returns the JSON reply.

    Raises:
      ServingError: an HTTP error (with TF Serving's ``{"error": ...}``
        message) or an unreachable server.
    """
    request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        text = e.read().decode("utf-8", "replace")
        try:
            message = json.loads(text).get("error", text)
        except (ValueError, AttributeError):
            message = text
        raise ServingError(f"{url} answered HTTP {e.code}: {message}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ServingError(f"Cannot reach {url}: {reason}. Is TF Serving running (docs/serving.md)?") from None


def _from_json(value):
    if isinstance(value, dict) and set(value) == {BASE64_KEY}:
        return base64.b64decode(value[BASE64_KEY], validate=True)
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def decode_outputs(reply: dict, output_names: Sequence[str] | None = None) -> dict:
    """The named outputs of a predict reply (columnar ``outputs`` or row
    ``predictions``): ``{"b64"}`` values as bytes, numbers as float32 arrays.

    Args:
      reply: The JSON reply.
      output_names: Names of a single, unnamed output (TF Serving omits the
        name when a signature has one output).
    """
    if "error" in reply:
        raise ServingError(reply["error"])
    if "outputs" in reply:
        outputs = reply["outputs"]
        if not isinstance(outputs, dict) or (output_names and len(output_names) == 1
                                             and output_names[0] not in outputs):
            outputs = {(output_names or ["output"])[0]: outputs}
    elif "predictions" in reply:
        rows = reply["predictions"]
        if rows and isinstance(rows[0], dict):
            outputs = {name: [row[name] for row in rows] for name in rows[0]}
        else:
            outputs = {(output_names or ["output"])[0]: rows}
    else:
        raise ServingError(f"A predict reply holds 'outputs' or 'predictions'; got keys {sorted(reply)}.")
    decoded = {}
    for name, value in outputs.items():
        value = _from_json(value)
        decoded[name] = value if _holds_bytes(value) else np.asarray(value, np.float32)
    return decoded


def _holds_bytes(value) -> bool:
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, (bytes, str))


def rest_predict(inputs: Mapping[str, object], signature_name: str = DEFAULT_SIGNATURE, *,
                 server: str = f"http://localhost:{REST_PORT}", model: str = DEFAULT_MODEL,
                 version: int | None = None, timeout: float = 60.0) -> dict:
    """One REST predict call; returns ``decode_outputs`` of the reply."""
    body = build_predict_body(inputs, signature_name)
    return decode_outputs(post_json(predict_url(server, model, version), body, timeout))


# ---------------------------------------------------------------- gRPC


def grpc_predict(inputs: Mapping[str, object], signature_name: str = DEFAULT_SIGNATURE, *,
                 target: str = f"localhost:{GRPC_PORT}", model: str = DEFAULT_MODEL,
                 version: int | None = None, timeout: float = 60.0,
                 output_filter: Sequence[str] = ()) -> dict:
    """One gRPC ``Predict`` call through ``tensorflow-serving-api``.

    Args:
      inputs: Input name -> list of values (``bytes`` for images).
      signature_name: The signature.
      target: ``host:port`` of TF Serving's gRPC port.
      model: Model name.
      version: Model version (default: the latest).
      timeout: Seconds.
      output_filter: Outputs to return (default all); e.g.
        ``["output_png_bytes"]`` skips the float image.

    Returns:
      Output name -> list of bytes (string outputs) or a numpy array.

    Raises:
      ImportError: ``tensorflow-serving-api`` is not installed.
      ServingError: the call failed (with the server's message).
    """
    try:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    except ImportError:
        raise ImportError(_GRPC_HINT) from None
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, values in inputs.items():
        dtype = tf.string if _holds_bytes(list(values)) else tf.float32
        request.inputs[name].CopyFrom(tf.make_tensor_proto(list(values), dtype=dtype))
    request.output_filter.extend(output_filter)
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as e:
            raise ServingError(f"gRPC Predict on {target} failed ({e.code().name}): {e.details()}") from None
    outputs = {}
    for name, proto in response.outputs.items():
        array = tf.make_ndarray(proto)
        outputs[name] = list(array.tolist()) if array.dtype.kind in "SO" else array
    return outputs


# ---------------------------------------------------------------- in-process


class LocalPredictor:
    """TF Serving's JSON predict semantics, in-process, on a SavedModel.

    Follows ``tensorflow_serving/util/json_tensor.cc``: exactly one of
    ``inputs`` (columnar) or ``instances`` (rows); ``{"b64": ...}`` for binary
    strings; every signature input must be given and no other; the reply is
    ``{"outputs": ...}`` or ``{"predictions": ...}``, with string outputs
    base64-encoded when their name ends in ``_bytes``; errors are
    ``{"error": message}``.

    Args:
      export_dir: A version folder (or the model folder: the highest version).
    """

    def __init__(self, export_dir: str):
        import tensorflow as tf

        from leed_tf.inference.export import latest_version_dir

        self.export_dir = latest_version_dir(export_dir)
        self.model = tf.saved_model.load(self.export_dir)
        self._lock = threading.Lock()

    def predict_json(self, body) -> tuple[int, dict]:
        """Answers one predict request: ``(http_status, reply)``."""
        import tensorflow as tf

        try:
            signature_name, tensors, row_format = self._parse(body)
            with self._lock:
                outputs = self.model.signatures[signature_name](**tensors)
        except (_RequestError, tf.errors.InvalidArgumentError) as e:
            return 400, {"error": getattr(e, "message", None) or str(e)}
        outputs = {name: value.numpy() for name, value in outputs.items()}
        return 200, _reply(outputs, row_format)

    def _parse(self, body):
        import tensorflow as tf

        if not isinstance(body, dict):
            raise _RequestError("The request body must be a JSON object.")
        signature_name = body.get("signature_name", DEFAULT_SIGNATURE)
        if not isinstance(signature_name, str):
            raise _RequestError("'signature_name' key must be a string value.")
        if signature_name not in self.model.signatures:
            raise _RequestError(f"Serving signature name: \"{signature_name}\" not found in signature def; "
                                f"the model has {', '.join(sorted(self.model.signatures))}.")
        specs = self.model.signatures[signature_name].structured_input_signature[1]
        if ("inputs" in body) == ("instances" in body):
            raise _RequestError("Missing 'inputs' or 'instances' key (exactly one of them).")
        row_format = "instances" in body
        if row_format:
            columns = _rows_to_columns(body["instances"], list(specs))
        else:
            columns = body["inputs"]
            if not isinstance(columns, dict):
                if len(specs) != 1:
                    raise _RequestError("'inputs' must be an object naming every input of the signature.")
                columns = {next(iter(specs)): columns}
        unknown = sorted(set(columns) - set(specs))
        missing = sorted(set(specs) - set(columns))
        if unknown:
            raise _RequestError(f"JSON object: does not have named input: {unknown[0]}")
        if missing:
            raise _RequestError(f"Missing input(s): {', '.join(missing)}.")
        tensors = {}
        for name, spec in specs.items():
            try:
                value = _from_json(columns[name])
            except RecursionError:
                raise _RequestError(f"Input {name}: the JSON value is nested too deeply.") from None
            except (TypeError, ValueError):  # binascii.Error is a ValueError.
                raise _RequestError(f"Input {name}: a {{\"b64\": ...}} value is not a base64 string.") from None
            try:
                tensor = tf.constant(value, dtype=spec.dtype)
            except (TypeError, ValueError, RecursionError):
                kind = "strings or {\"b64\": ...} objects" if spec.dtype == tf.string else "numbers"
                raise _RequestError(f"Input {name}: cannot convert the JSON value to {spec.dtype.name}; "
                                    f"expected {kind}.") from None
            if not spec.shape.is_compatible_with(tensor.shape):
                raise _RequestError(f"Input {name} has shape {tensor.shape.as_list()}; the signature "
                                    f"expects {spec.shape.as_list()} (None: any size).")
            tensors[name] = tensor
        return signature_name, tensors, row_format


class _RequestError(ValueError):
    pass


def _rows_to_columns(instances, names):
    if not isinstance(instances, list) or not instances:
        raise _RequestError("'instances' must be a non-empty list.")
    if len(names) == 1 and not isinstance(instances[0], dict):
        return {names[0]: instances}
    if not all(isinstance(row, dict) for row in instances):
        raise _RequestError("Each instance must be an object naming the signature's inputs.")
    keys = set(instances[0])
    if any(set(row) != keys for row in instances):
        raise _RequestError("Every instance must name the same inputs.")
    return {name: [row[name] for row in instances] for name in keys}


def _to_json(name: str, value: np.ndarray):
    if value.dtype.kind in "SO":
        as_bytes = name.endswith(BYTES_SUFFIX)

        def convert(v):
            if isinstance(v, list):
                return [convert(x) for x in v]
            return b64(v) if as_bytes else v.decode("utf-8", "replace")

        return convert(value.tolist())
    return value.tolist()


def _reply(outputs: dict, row_format: bool) -> dict:
    if row_format:
        batch = len(next(iter(outputs.values())))
        if len(outputs) == 1:
            (name, value), = outputs.items()
            return {"predictions": _to_json(name, value)}
        return {"predictions": [{name: _to_json(name, value[i:i + 1])[0] for name, value in outputs.items()}
                                for i in range(batch)]}
    if len(outputs) == 1:
        (name, value), = outputs.items()
        return {"outputs": _to_json(name, value)}
    return {"outputs": {name: _to_json(name, value) for name, value in outputs.items()}}


_PREDICT_PATH = re.compile(r"^/v1/models/(?P<model>[^/:]+)(?:/versions/(?P<version>\d+))?:predict$")


def serve_local(export_dir: str, host: str = "127.0.0.1", port: int = 0, model: str = DEFAULT_MODEL):
    """Serves ``POST /v1/models/<model>[/versions/<n>]:predict`` from a thread.

    A development stand-in for TF Serving's REST port (one model, one
    version, requests answered one at a time). Stop it with
    ``server.shutdown(); server.server_close()``.

    Returns:
      ``(server, url)``; ``server.requests`` lists the JSON bodies received.
    """
    predictor = LocalPredictor(export_dir)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            match = _PREDICT_PATH.match(self.path)
            if not match or match.group("model") != model:
                return self._send(404, {"error": f"Servable not found for request: {self.path}"})
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length).decode("utf-8"))
            except (ValueError, UnicodeDecodeError, RecursionError) as e:
                return self._send(400, {"error": f"JSON Parse error: {e}"})
            server.requests.append(body)
            self._send(*predictor.predict_json(body))

        def _send(self, status, reply):
            data = json.dumps(reply).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # Quiet: tests and scripts print what matters.
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, name="leed-local-serving", daemon=True)
    thread.start()
    return server, f"http://{host}:{server.server_address[1]}"


# ---------------------------------------------------------------- the client command


def edit_request(input_path: str, output_path: str, *, reference_path: str | None = None,
                 expression: str | None = None, intensity: float = 1.0, mode: str = "rest",
                 server: str = f"http://localhost:{REST_PORT}", grpc_target: str = f"localhost:{GRPC_PORT}",
                 local_export: str | None = None, model: str = DEFAULT_MODEL, version: int | None = None,
                 timeout: float = 60.0, input_neutral_path: str | None = None,
                 reference_neutral_path: str | None = None) -> str:
    """What ``scripts/serve_client.py`` does: one edit through REST, gRPC or
    in-process, the PNG written to ``output_path``.

    Args:
      mode: ``rest``, ``grpc`` or ``local`` (``local_export`` is then the
        SavedModel, run in-process with the same JSON request as REST).

    Returns:
      ``output_path``.
    """
    def read(path):
        with open(path, "rb") as f:
            return f.read()

    signature, inputs = edit_inputs(
        [read(input_path)], None if reference_path is None else [read(reference_path)], intensity,
        expressions=None if expression is None else [expression],
        input_neutrals=None if input_neutral_path is None else [read(input_neutral_path)],
        reference_neutrals=None if reference_neutral_path is None else [read(reference_neutral_path)])
    if mode == "rest":
        outputs = rest_predict(inputs, signature, server=server, model=model, version=version,
                               timeout=timeout)
    elif mode == "local":
        if not local_export:
            raise ValueError("Local mode needs the SavedModel folder.")
        status, reply = LocalPredictor(local_export).predict_json(build_predict_body(inputs, signature))
        if status != 200:
            raise ServingError(reply["error"])
        outputs = decode_outputs(reply)
    elif mode == "grpc":
        outputs = grpc_predict(inputs, signature, target=grpc_target, model=model, version=version,
                               timeout=timeout, output_filter=["output_png_bytes"])
    else:
        raise ValueError(f"mode must be rest, grpc or local, got {mode!r}.")
    with open(output_path, "wb") as f:
        f.write(outputs["output_png_bytes"][0])
    return output_path
