"""The study: a grid of detector variants × training seeds run as DVC experiments, and its effects.

``python -m pipeline.study --variants ssd shallow fem atss mdssd --seeds 3`` queues the grid with
DVC's experiment queue (:mod:`pipeline.study.grid`), runs it, reads each run's evaluation back
from its experiment commit, and writes the effects with intervals over seeds and test images
(:mod:`pipeline.study.effects`) as a report with a forest plot (:mod:`pipeline.study.report`).
"""
