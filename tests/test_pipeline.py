"""tf.data pipelines over in-memory faces: gathering, pairing, seeds, epochs.

Most tests use images whose every pixel encodes the image's row index, so
flips and shifts leave them unchanged and each output image says where it
came from.
"""

import numpy as np
import pytest
import tensorflow as tf

from leed_tf.data import pipeline
from leed_tf.data.images import scale_to_unit

SIZE = 16


def index_images(n):
    """``uint8 [n, SIZE, SIZE, 3]``: red = i % 256, green = i // 256, blue = 7."""
    i = np.arange(n)
    colours = np.stack([i % 256, i // 256, np.full(n, 7)], axis=-1).astype(np.uint8)
    return np.broadcast_to(colours[:, None, None, :], (n, SIZE, SIZE, 3)).copy()


def decode_index(images):
    """Row index of each image of an ``index_images`` batch (after to_unit)."""
    pixels = np.rint((np.asarray(images) + 1.0) * 127.5).astype(np.int64)
    assert np.all(pixels == pixels[:, :1, :1, :]), "augmentation mixed images"
    return pixels[:, 0, 0, 0] + 256 * pixels[:, 0, 0, 1]


def random_images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def collect(dataset, *keys):
    """Concatenates ``keys`` over one pass (one epoch) of ``dataset``."""
    batches = list(dataset)
    arrays = [np.concatenate([batch[key].numpy() for batch in batches]) for key in keys]
    return arrays[0] if len(keys) == 1 else arrays


def first_batches(dataset, count=2):
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset.take(count)]


def assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_to_unit_range():
    out = scale_to_unit(tf.constant(np.array([0, 255, 128], np.uint8))).numpy()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [-1.0, 1.0, 128 / 127.5 - 1], atol=1e-6)


@pytest.mark.parametrize("num_images,batch_size,drop,expected", [
    (10, 4, True, 2), (10, 4, False, 3), (8, 4, True, 2), (8, 4, False, 2), (3, 4, False, 1)])
def test_steps_per_epoch(num_images, batch_size, drop, expected):
    assert pipeline.steps_per_epoch(num_images, batch_size, drop) == expected


def test_image_dataset_shapes_dtypes_ranges():
    dataset = pipeline.image_dataset(random_images(20), np.arange(20) % 3, batch_size=8, jitter=0.2)
    batches = list(dataset)
    assert len(batches) == pipeline.steps_per_epoch(20, 8) == 2
    for batch in batches:
        assert set(batch) == {"image", "label"}
        assert batch["image"].shape == (8, SIZE, SIZE, 3) and batch["image"].dtype == tf.float32
        assert batch["label"].shape == (8,) and batch["label"].dtype == tf.int32
        assert -1.0 <= batch["image"].numpy().min() and batch["image"].numpy().max() <= 1.0
    no_labels = next(iter(pipeline.image_dataset(random_images(20), None, batch_size=8)))
    assert set(no_labels) == {"image"}


def test_image_dataset_labels_match_their_images():
    labels = np.arange(50) * 3 + 1
    dataset = pipeline.image_dataset(index_images(300)[:50], labels, batch_size=7,
                                     drop_remainder=False)
    images, got = collect(dataset, "image", "label")
    np.testing.assert_array_equal(got, labels[decode_index(images)])


def test_gather_reads_rows_beyond_256():
    images = index_images(600)
    dataset = pipeline.image_dataset(images, np.arange(600), batch_size=64, drop_remainder=False)
    batch = next(iter(dataset))
    np.testing.assert_array_equal(decode_index(batch["image"]), batch["label"])


def test_each_epoch_visits_every_image_once():
    dataset = pipeline.image_dataset(index_images(23), np.arange(23), batch_size=5,
                                     drop_remainder=False)
    for _ in range(2):
        np.testing.assert_array_equal(np.sort(collect(dataset, "label")), np.arange(23))


def test_drop_remainder():
    kept = list(pipeline.image_dataset(random_images(10), None, 4, drop_remainder=False))
    dropped = list(pipeline.image_dataset(random_images(10), None, 4, drop_remainder=True))
    assert [len(b["image"]) for b in kept] == [4, 4, 2]
    assert [len(b["image"]) for b in dropped] == [4, 4]
    with pytest.raises(ValueError, match="cannot fill one batch"):
        pipeline.image_dataset(random_images(3), None, 4, drop_remainder=True)


def test_augmentation_is_applied_and_can_be_turned_off():
    images = random_images(16)
    plain = next(iter(pipeline.image_dataset(images, None, 16, shuffle=False, flip=False,
                                             max_shift=0)))["image"]
    np.testing.assert_allclose(plain, scale_to_unit(images), atol=1e-6)
    augmented = next(iter(pipeline.image_dataset(images, None, 16, shuffle=False)))["image"]
    assert not np.allclose(augmented, plain)


def test_same_seed_same_batches_other_seed_other_order():
    images, labels = random_images(40), np.arange(40)
    first = first_batches(pipeline.image_dataset(images, labels, 8, seed=5, jitter=0.1))
    again = first_batches(pipeline.image_dataset(images, labels, 8, seed=5, jitter=0.1))
    assert_batches_equal(first, again)
    other = first_batches(pipeline.image_dataset(images, labels, 8, seed=6, jitter=0.1))
    assert not np.array_equal(first[0]["label"], other[0]["label"])


def test_epochs_differ_in_order_and_augmentation():
    dataset = pipeline.image_dataset(index_images(40), np.arange(40), 8, seed=1)
    epoch_1, epoch_2 = collect(dataset, "label"), collect(dataset, "label")
    assert not np.array_equal(epoch_1, epoch_2)
    # Unshuffled, the order repeats but the augmentation does not.
    fixed = pipeline.image_dataset(random_images(16), None, 16, shuffle=False)
    assert not np.array_equal(collect(fixed, "image"), collect(fixed, "image"))


def test_repeat_loops_over_shuffled_epochs():
    steps = pipeline.steps_per_epoch(20, 5)
    dataset = pipeline.image_dataset(index_images(20), np.arange(20), 5, repeat=True)
    labels = collect(dataset.take(3 * steps), "label").reshape(3, 20)
    for epoch in labels:
        np.testing.assert_array_equal(np.sort(epoch), np.arange(20))
    assert not np.array_equal(labels[0], labels[1])


def test_parallel_nondeterministic_mode_gives_the_same_batches():
    # Augmentation is seeded per batch, so only the arrival order may change.
    images = random_images(48)
    ordered = list(pipeline.image_dataset(images, np.arange(48), 8, jitter=0.1))
    unordered = list(pipeline.image_dataset(images, np.arange(48), 8, jitter=0.1,
                                            deterministic=False))
    key = lambda batch: tuple(batch["label"].numpy())  # noqa: E731
    for a, b in zip(sorted(ordered, key=key), sorted(unordered, key=key)):
        np.testing.assert_array_equal(a["image"], b["image"])


def test_paired_dataset_keys_shapes_dtypes():
    carry = {"subject": np.arange(12) // 3, "identity": np.random.rand(12, 5).astype(np.float32)}
    batch = next(iter(pipeline.paired_dataset(random_images(12), random_images(12, seed=1), 4,
                                              carry=carry)))
    images = ("input", "input_neutral", "reference", "reference_neutral")
    assert set(batch) == set(images) | {"input_index", "reference_index", "input_subject",
                                        "reference_subject", "input_identity",
                                        "reference_identity"}
    for key in images:
        assert batch[key].shape == (4, SIZE, SIZE, 3) and batch[key].dtype == tf.float32
        assert -1 <= batch[key].numpy().min() and batch[key].numpy().max() <= 1
    assert batch["input_index"].dtype == tf.int32 and batch["reference_index"].dtype == tf.int32
    assert batch["input_identity"].shape == (4, 5) and batch["input_identity"].dtype == tf.float32


def test_paired_images_indices_and_carry_are_aligned():
    images = index_images(30)
    neutrals = 255 - images
    carry = {"subject": np.arange(30) * 10, "identity": np.arange(60.0).reshape(30, 2)}
    dataset = pipeline.paired_dataset(images, neutrals, 4, carry=carry, drop_remainder=False)
    for batch in dataset:
        for side in ("input", "reference"):
            index = batch[side + "_index"].numpy()
            np.testing.assert_array_equal(decode_index(batch[side]), index)
            np.testing.assert_allclose(batch[side + "_neutral"], -batch[side].numpy(), atol=1e-6)
            np.testing.assert_array_equal(batch[side + "_subject"], carry["subject"][index])
            np.testing.assert_array_equal(batch[side + "_identity"], carry["identity"][index])


def test_input_and_its_neutral_share_one_augmentation():
    images = random_images(32)
    for batch in pipeline.paired_dataset(images, images, 8, jitter=0.2):
        np.testing.assert_array_equal(batch["input"], batch["input_neutral"])
        np.testing.assert_array_equal(batch["reference"], batch["reference_neutral"])
    # And with a neutral that differs from its image: same flip and shift.
    neutrals = 255 - images
    for batch in pipeline.paired_dataset(images, neutrals, 8):
        np.testing.assert_allclose(batch["input_neutral"], -batch["input"].numpy(), atol=1e-6)
        np.testing.assert_allclose(batch["reference_neutral"], -batch["reference"].numpy(),
                                   atol=1e-6)


def test_references_are_independent_of_inputs():
    dataset = pipeline.paired_dataset(index_images(64), index_images(64), 8, seed=2)
    inputs, references = collect(dataset, "input_index", "reference_index")
    np.testing.assert_array_equal(np.sort(inputs), np.arange(64))
    np.testing.assert_array_equal(np.sort(references), np.arange(64))
    assert not np.array_equal(inputs, references)
    assert np.mean(inputs == references) < 0.2
    # The same image as input and as reference gets independent augmentations.
    images = np.repeat(random_images(1), 64, axis=0)
    batch = next(iter(pipeline.paired_dataset(images, images, 64, shuffle=False)))
    assert np.mean([np.array_equal(a, b) for a, b in zip(batch["input"], batch["reference"])]) < 0.5


def test_unshuffled_pairs_are_fixed_and_never_self():
    for n in (7, 10):
        dataset = pipeline.paired_dataset(index_images(n), index_images(n), 3, shuffle=False,
                                          drop_remainder=False)
        inputs, references = collect(dataset, "input_index", "reference_index")
        np.testing.assert_array_equal(inputs, np.arange(n))
        np.testing.assert_array_equal(references, (np.arange(n) + n // 2) % n)
        assert np.all(inputs != references)


def test_paired_dataset_is_reproducible_and_reshuffles():
    images = random_images(24)
    make = lambda seed: pipeline.paired_dataset(images, images, 6, seed=seed)  # noqa: E731
    assert_batches_equal(first_batches(make(3)), first_batches(make(3)))
    dataset = make(3)
    epoch_1 = collect(dataset, "reference_index")
    epoch_2 = collect(dataset, "reference_index")
    assert not np.array_equal(epoch_1, epoch_2)
    assert not np.array_equal(collect(make(4), "input_index"), collect(make(3), "input_index"))


def test_paired_repeat_and_steps():
    dataset = pipeline.paired_dataset(random_images(10), random_images(10), 4, repeat=True)
    assert len(list(dataset.take(7))) == 7
    once = pipeline.paired_dataset(random_images(10), random_images(10), 4)
    assert len(list(once)) == pipeline.steps_per_epoch(10, 4) == 2


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="uint8"):
        pipeline.image_dataset(random_images(8).astype(np.float32), None, 4)
    with pytest.raises(ValueError, match="labels has 7 rows"):
        pipeline.image_dataset(random_images(8), np.arange(7), 4)
    with pytest.raises(ValueError, match="neutrals must match"):
        pipeline.paired_dataset(random_images(8), random_images(9), 4)
    with pytest.raises(ValueError, match="carry"):
        pipeline.paired_dataset(random_images(8), random_images(8), 4, carry={"s": np.arange(3)})


def test_carry_mirrored_follows_each_faces_flip():
    # A left/right asymmetric image per row: its flip is visible.
    images = random_images(12)
    values = np.arange(12, dtype=np.float32)
    carry = {"code": (values, values + 100.0)}
    seen = set()
    for batch in pipeline.paired_dataset(images, images, 4, max_shift=0, carry_mirrored=carry, seed=3):
        for side in ("input", "reference"):
            index, code = batch[side + "_index"].numpy(), batch[side + "_code"].numpy()
            pixels = np.rint((batch[side].numpy() + 1.0) * 127.5).astype(np.uint8)
            mirrored = code >= 100.0
            np.testing.assert_array_equal(code - 100.0 * mirrored, index)
            for k in range(len(index)):
                expected = images[index[k]][:, ::-1] if mirrored[k] else images[index[k]]
                np.testing.assert_array_equal(pixels[k], expected)
            seen |= set(mirrored.tolist())
    assert seen == {True, False}


def test_pairs_without_references_and_carry_mirrored_refusals():
    batch = next(iter(pipeline.paired_dataset(random_images(8), random_images(8, seed=1), 4,
                                              references=False)))
    assert set(batch) == {"input", "input_neutral", "input_index"}
    pair = (np.zeros(8), np.ones(8))
    with pytest.raises(ValueError, match="max_shift=0"):
        pipeline.paired_dataset(random_images(8), random_images(8), 4, max_shift=2, carry_mirrored={"c": pair})
    with pytest.raises(ValueError, match="differs"):
        pipeline.paired_dataset(random_images(8), random_images(8), 4, max_shift=0,
                                carry_mirrored={"c": (np.zeros(8), np.zeros((8, 2)))})


def test_pair_targets_follow_the_table_and_the_inputs_flip():
    images = random_images(12)
    values = np.arange(12, dtype=np.float32)
    groups = np.arange(12) % 3
    # Target of (input i, reference j): a face of i's group chosen by a known rule.
    table = np.array([[(g + 3 * ((j + 1) % 4)) if j % 5 else -1 for j in range(12)] for g in range(3)])
    dataset = pipeline.paired_dataset(images, images, 4, max_shift=0, seed=5,
                                      carry_mirrored={"code": (values, values + 100.0)},
                                      pair_targets=(groups, table))
    seen_missing, flips = False, set()
    for batch in dataset:
        i, j = batch["input_index"].numpy(), batch["reference_index"].numpy()
        target = batch["target_index"].numpy()
        np.testing.assert_array_equal(target, table[groups[i], j])
        mirrored = batch["input_code"].numpy() >= 100.0
        code = batch["target_code"].numpy()
        np.testing.assert_array_equal(code, np.maximum(target, 0) + 100.0 * mirrored)
        seen_missing |= bool(np.any(target < 0))
        flips |= set(mirrored.tolist())
    assert seen_missing and flips == {True, False}


def test_pair_targets_refusals():
    images, pair = random_images(8), (np.zeros(8), np.ones(8))
    good = (np.zeros(8, int), np.zeros((1, 8), int))
    with pytest.raises(ValueError, match="carry_mirrored"):
        pipeline.paired_dataset(images, images, 4, max_shift=0, pair_targets=good)
    with pytest.raises(ValueError, match="covering every group"):
        pipeline.paired_dataset(images, images, 4, max_shift=0, carry_mirrored={"c": pair},
                                pair_targets=(np.full(8, 2), np.zeros((1, 8), int)))
    with pytest.raises(ValueError, match="out of range"):
        pipeline.paired_dataset(images, images, 4, max_shift=0, carry_mirrored={"c": pair},
                                pair_targets=(np.zeros(8, int), np.full((1, 8), 8)))
