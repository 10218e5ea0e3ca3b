"""Object detection suites: ``coco`` (bbox, segm, keypoints) and ``lvis`` (bbox, segm).

From the command line::

    python -m harness import --suite coco --name mine results.json     # a COCO result file, as a run
    python -m harness score --run mine                                   # AP, AP50, ..., AR@100 per IoU type
    python -m harness run --suite coco --model maskrcnn_resnet50_fpn --checkpoint w.pth --data-dir IMAGES
    python -m harness score --run mine --iou-type bbox --max-dets 1,10,50   # not the official AP: see README.md
    python -m harness sql "SELECT category_id, count(*) FROM coco_detections GROUP BY 1"

From Python (``harness.detection.suite``): ``COCO.import_predictions(store, path, name,
label_set=None, drop_unknown_images=False)``, ``COCO.score(store, run_id, label_set=None,
iou_types=None, max_dets=None)``, ``COCO.evaluate(...)`` for the precision/recall arrays and
per-category AP, ``COCO.run(store, model, data_dir, checkpoint=..., model_kwargs=..., name=...,
limit=..., label_set=...)``, and ``import_ground_truth(store, path, name)`` to score against your
own annotation file.

COCO numbers equal pycocotools' exactly (tested by running both). LVIS follows LVIS's rules
(federated negatives, not-exhaustive categories, 300 detections per image), tested by the
properties they fix on the real LVIS ground truth, not against lvis-api (which does not run on
numpy 2). ultrafast-pycocotools does the work (see ``evaluate``). Rows and tables are described in
``suite``; the user guide, with the maxDets rule, is README.md beside this file.
"""
