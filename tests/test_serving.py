"""Clients: TF Serving's documented REST body, reply decoding, a round trip
against a local stand-in server on 127.0.0.1, in-process (local) mode, and gRPC
against an in-process PredictionService (when tensorflow-serving-api is
installed)."""

import base64
import io
import json
import socket
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from leed_tf.inference import clients as serving
from test_editor import assert_same_pixels, png, trained_model

TIMEOUT = 60



@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """The run folder and export of tests/test_editor.py (trained once per process)."""
    return trained_model(tmp_path_factory)

def test_rest_body_is_tf_servings_columnar_format():
    jpeg, other = b"\xff\xd8\xff\xe0 input", b"\x89PNG\r\n\x1a\n reference"
    signature, inputs = serving.edit_inputs([jpeg], [other], 0.5)
    body = serving.build_predict_body(inputs, signature)
    # The shape documented for TF Serving's REST predict API (columnar format).
    assert body == {
        "signature_name": "serving_default",
        "inputs": {"input_image": [{"b64": base64.b64encode(jpeg).decode("ascii")}],
                   "reference_image": [{"b64": base64.b64encode(other).decode("ascii")}],
                   "intensity": [0.5]},
    }
    assert json.loads(json.dumps(body)) == body
    signature, inputs = serving.edit_inputs([jpeg, other], expressions=["happy", "sad"], intensity=[1.0, 0.25])
    assert serving.build_predict_body(inputs, signature) == {
        "signature_name": "edit_with_expression",
        "inputs": {"input_image": [{"b64": base64.b64encode(jpeg).decode("ascii")},
                                   {"b64": base64.b64encode(other).decode("ascii")}],
                   "expression": ["happy", "sad"], "intensity": [1.0, 0.25]},
    }
    assert serving.edit_inputs([jpeg, jpeg], [other, other], 2.0)[1]["intensity"] == [2.0, 2.0]
    with pytest.raises(ValueError, match="exactly one"):
        serving.edit_inputs([jpeg], [other], expressions=["happy"])
    assert serving.predict_url("localhost:8501") == "http://localhost:8501/v1/models/leed:predict"
    assert serving.predict_url("http://h:1/", "m", 3) == "http://h:1/v1/models/m/versions/3:predict"


def test_replies_are_decoded_in_both_formats():
    data = b"\x89PNG\r\n\x1a\n pixels"
    encoded = {"b64": base64.b64encode(data).decode("ascii")}
    columnar = serving.decode_outputs({"outputs": {"output_png_bytes": [encoded], "output_image": [[[[0.5]]]]}})
    assert columnar["output_png_bytes"] == [data]
    assert columnar["output_image"].dtype == np.float32 and columnar["output_image"].shape == (1, 1, 1, 1)
    rows = serving.decode_outputs({"predictions": [{"output_png_bytes": encoded, "output_image": [[0.25]]}]})
    assert rows["output_png_bytes"] == [data] and rows["output_image"].shape == (1, 1, 1)
    assert serving.decode_outputs({"outputs": [[1.0]]}, ["score"])["score"].shape == (1, 1)
    with pytest.raises(serving.ServingError, match="boom"):
        serving.decode_outputs({"error": "boom"})


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_a_clear_error():
    url = serving.predict_url(f"127.0.0.1:{_free_port()}")
    with pytest.raises(serving.ServingError, match="Cannot reach .*TF Serving running"):
        serving.post_json(url, {"inputs": {}}, timeout=10)


def test_rest_round_trip_against_a_local_server(trained, tmp_path):
    face, reference = trained.faces[1], trained.faces[12]
    (tmp_path / "in.png").write_bytes(png(face))
    (tmp_path / "ref.png").write_bytes(png(reference))
    expected = trained.editor("export").edit(face, reference)
    server, url = serving.serve_local(trained.export_base)
    try:
        path = serving.edit_request(str(tmp_path / "in.png"), str(tmp_path / "out.png"),
                                    reference_path=str(tmp_path / "ref.png"), mode="rest", server=url,
                                    timeout=TIMEOUT)
        body = server.requests[-1]
        assert body == {"signature_name": "serving_default",
                        "inputs": {"input_image": [serving.b64(png(face))],
                                   "reference_image": [serving.b64(png(reference))], "intensity": [1.0]}}
        assert_same_pixels(np.asarray(Image.open(path)), expected)

        serving.edit_request(str(tmp_path / "in.png"), str(tmp_path / "happy.png"), expression="happy",
                             intensity=0.5, mode="rest", server=url, timeout=TIMEOUT)
        assert server.requests[-1]["signature_name"] == "edit_with_expression"
        assert_same_pixels(np.asarray(Image.open(tmp_path / "happy.png")),
                           trained.editor("export").edit(face, expression="happy", intensity=0.5))

        # TF Serving's row format is understood too.
        reply = serving.post_json(serving.predict_url(url), {"instances": [
            {"input_image": serving.b64(png(face)), "reference_image": serving.b64(png(reference)),
             "intensity": 1.0}]}, timeout=TIMEOUT)
        row = reply["predictions"][0]
        assert_same_pixels(
            np.asarray(Image.open(io.BytesIO(base64.b64decode(row["output_png_bytes"]["b64"])))), expected)

        with pytest.raises(serving.ServingError, match="(?s)HTTP 400.*not a JPEG or PNG image"):
            serving.rest_predict({"input_image": [b"junk"], "reference_image": [png(reference)],
                                  "intensity": [1.0]}, server=url, timeout=TIMEOUT)
        with pytest.raises(serving.ServingError, match="(?s)HTTP 400.*does not have named input: smile"):
            serving.rest_predict({"smile": [1.0]}, server=url, timeout=TIMEOUT)
        with pytest.raises(serving.ServingError, match="HTTP 404"):
            serving.rest_predict({}, server=url, model="other", timeout=TIMEOUT)
    finally:
        server.shutdown()
        server.server_close()

    # --local: the same JSON request, answered in-process.
    serving.edit_request(str(tmp_path / "in.png"), str(tmp_path / "local.png"),
                         reference_path=str(tmp_path / "ref.png"), mode="local",
                         local_export=trained.export_base)
    assert_same_pixels(np.asarray(Image.open(tmp_path / "local.png")), expected)


def test_grpc_client_without_the_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)
    monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", None)
    with pytest.raises(ImportError, match="pip install tensorflow-serving-api"):
        serving.grpc_predict({"input_image": [b"x"]})


def test_grpc_round_trip_against_an_in_process_prediction_service(trained, tmp_path):
    pytest.importorskip("tensorflow_serving.apis")
    from concurrent import futures

    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    model = trained.editor("export").model

    class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        """What TF Serving's Predict does, for this one model."""

        def Predict(self, request, context):  # noqa: N802 (gRPC's name)
            if request.model_spec.name != "leed":
                context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found: {request.model_spec.name}")
            inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
            try:
                outputs = model.signatures[request.model_spec.signature_name or "serving_default"](**inputs)
            except tf.errors.InvalidArgumentError as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.message)
            response = predict_pb2.PredictResponse()
            for name, value in outputs.items():
                if not request.output_filter or name in request.output_filter:
                    response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        target = f"127.0.0.1:{port}"
        face, reference = trained.faces[6], trained.faces[11]
        (tmp_path / "in.png").write_bytes(png(face))
        (tmp_path / "ref.png").write_bytes(png(reference))
        path = serving.edit_request(str(tmp_path / "in.png"), str(tmp_path / "out.png"),
                                    reference_path=str(tmp_path / "ref.png"), mode="grpc",
                                    grpc_target=target, timeout=TIMEOUT)
        assert_same_pixels(np.asarray(Image.open(path)), trained.editor("export").edit(face, reference))
        outputs = serving.grpc_predict({"input_image": [png(face)], "expression": ["sad"], "intensity": [1.0]},
                                       "edit_with_expression", target=target, timeout=TIMEOUT)
        assert outputs["output_image"].shape == (1, 128, 128, 3) and len(outputs["output_png_bytes"]) == 1
        with pytest.raises(serving.ServingError, match="(?s)INVALID_ARGUMENT.*Batch sizes differ"):
            serving.grpc_predict({"input_image": [png(face)] * 2, "reference_image": [png(reference)],
                                  "intensity": [1.0]}, target=target, timeout=TIMEOUT)
    finally:
        server.stop(grace=None)
