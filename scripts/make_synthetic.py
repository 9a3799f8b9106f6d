"""Writes the built-in synthetic faces to disk, and/or a contact sheet of them.

Examples:

  # RaFD-style 681x1024 JPEGs that the RaFD loader reads:
  python scripts/make_synthetic.py --out=/tmp/synthetic_rafd --format=rafd --subjects=10

  # <expression>/<subject>_<pose>.png at 128x128 for the folder loader:
  python scripts/make_synthetic.py --out=/tmp/synthetic_folder --format=folder

  # Only a labelled grid of 6 subjects x 8 expressions:
  python scripts/make_synthetic.py --subjects=6 \\
      --contact_sheet=docs/images/synthetic_contact_sheet.png
"""

import sys
import time

from absl import app, flags

from leed_tf import cli
from PIL import Image

from leed_tf.data import synthetic

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "", "Output folder of the data set; empty to write none.")
flags.DEFINE_enum("format", "rafd", ["rafd", "folder"], "File layout (see write_dataset).")
flags.DEFINE_integer("subjects", 10, "Number of identities.")
flags.DEFINE_integer("seed", 0, "Seed of the identities.")
flags.DEFINE_integer("first_subject", 0, "Index of the first identity (held-out sets).")
flags.DEFINE_list("poses", ["-45", "0", "45"], "Yaw angles in degrees.")
flags.DEFINE_float("intensity", 1.0, "Expression intensity.")
flags.DEFINE_string("contact_sheet", "", "If set, a PNG of subjects x expressions at pose 0.")


def _progress(done: int, total: int) -> None:
    if done == total or done % 20 == 0:
        sys.stdout.write(f"\r  {done}/{total} images")
        sys.stdout.flush()
        if done == total:
            sys.stdout.write("\n")


def main(argv):
    del argv
    if not FLAGS.out and not FLAGS.contact_sheet:
        raise app.UsageError("Nothing to do: give --out and/or --contact_sheet.")
    if FLAGS.out:
        poses = [float(p) for p in FLAGS.poses]
        start = time.time()
        print(f"Rendering {FLAGS.subjects} subjects x {len(synthetic.EXPRESSIONS)} expressions x "
              f"{len(poses)} poses ({FLAGS.format}) into {FLAGS.out}")
        paths = synthetic.write_dataset(
            FLAGS.out, fmt=FLAGS.format, num_subjects=FLAGS.subjects, seed=FLAGS.seed,
            poses=poses, intensity=FLAGS.intensity, first_subject=FLAGS.first_subject,
            progress=_progress)
        print(f"Wrote {len(paths)} files to {FLAGS.out} in {time.time() - start:.1f} s.")
    if FLAGS.contact_sheet:
        sheet = synthetic.expression_sheet(FLAGS.subjects, FLAGS.seed,
                                           first_subject=FLAGS.first_subject)
        Image.fromarray(sheet).save(FLAGS.contact_sheet, optimize=True)
        print(f"Wrote the contact sheet {FLAGS.contact_sheet} ({sheet.shape[1]}x{sheet.shape[0]}).")


if __name__ == "__main__":
    cli.run(main)
