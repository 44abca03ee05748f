"""The repo's dvc.yaml stays acyclic when the detector trains on an SR set (DVC's own graph)."""

import shutil
from pathlib import Path

import networkx as nx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _graph(root: Path, train_set: str) -> nx.DiGraph:
    """DVC's stage graph of the repo's dvc.yaml with ``train.train_set`` set (stage name -> its deps' stages)."""
    from dvc.repo import Repo

    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["train_set"] = train_set
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    if not (root / ".dvc").exists():
        Repo.init(str(root), no_scm=True)
    with Repo(str(root)) as repo:
        graph = repo.index.graph  # raises CyclicGraphError on a cycle
        return nx.relabel_nodes(graph, {s: s.name for s in graph.nodes})


@pytest.mark.parametrize("train_set", ["sr", "srgan"])
def test_training_on_an_sr_set_keeps_the_graph_acyclic(tmp_path, train_set):
    g = _graph(tmp_path, train_set)
    assert nx.is_directed_acyclic_graph(g)
    # DVC's edges point from a stage to the stages it depends on
    assert nx.has_path(g, "train", "srgan_train") and nx.has_path(g, "srgan_train", "sr_features")
    assert not nx.has_path(g, "sr_features", "train") and not nx.has_path(g, "srgan_train", "train")
    assert set(g.successors("evaluate")) >= {"sr_infer", "train"}


def test_a_content_network_from_the_main_detector_would_be_a_cycle(tmp_path):
    """Why sr_features exists: the check above would catch srgan_train reading the main detector."""
    from dvc.exceptions import CyclicGraphError

    _graph(tmp_path, "hr")
    dvc = yaml.safe_load((tmp_path / "dvc.yaml").read_text())
    dvc["stages"]["srgan_train"]["deps"].append("data/models/detector/model.pt")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(dvc))
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["train"]["train_set"] = "srgan"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    from dvc.repo import Repo

    with Repo(str(tmp_path)) as repo, pytest.raises(CyclicGraphError):
        repo.index.graph  # noqa: B018
