"""Prefect orchestration: thin flows and tasks over the core library.

Only this sub-package imports Prefect.  Flows: ``train`` (pipeline.flows.train),
``evaluate`` (pipeline.flows.evaluate), ``repro`` (the whole DVC pipeline, stage by
stage, pipeline.flows.repro; served on a schedule by pipeline.flows.deploy).
"""
