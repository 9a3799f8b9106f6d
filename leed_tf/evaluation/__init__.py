"""Evaluation of LEED against baselines (docs/design.md section 5).

- ``evaluate.evaluate_run``: the whole evaluation of a run folder
  (``scripts/evaluate.py``).
- ``synthetic_eval``: ground-truth protocol on held-out synthetic identities.
- ``real_eval``: RaFD / CFEE / folders: expression accuracy, FID, dlib identity.
- ``methods``: the compared editors; ``pairs``: which edits are evaluated.
- ``metrics`` (PSNR, SSIM, L1), ``classifiers`` (expression and identity CNNs),
  ``fid`` (FID on InceptionV3 pool features), ``identity`` (dlib embeddings).
- ``figures``, ``charts``, ``events``, ``report``: PNG figures, Pillow charts,
  TensorBoard scalars and Markdown tables.
"""
