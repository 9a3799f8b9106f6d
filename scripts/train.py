"""Trains LEED (placeholder until the training stages land)."""

from absl import app


def main(argv):
    del argv
    print("Training is not yet available in this version of leed_tf.")


if __name__ == "__main__":
    app.run(main)
