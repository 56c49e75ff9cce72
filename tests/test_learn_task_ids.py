"""learn-task gives a new task tasks.json's next_id: it gave the highest id + 1, so after remove-head of the
highest id a task learned next got that id, and a client still sending it got the new task's answers."""
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from continual_models import relu_classifier

from graphsurgeon._src.continual.config import LearnConfig
from graphsurgeon._src.continual.learn import learn_task
from graphsurgeon._src.continual.write import predict
from graphsurgeon._src.multihead.merge import remove_task


def _learn(model, task, data, out):
    cfg = LearnConfig(model=str(model), features="hidden/Relu", task=task, method="feature-extraction", epochs=1)
    return learn_task(cfg, data, str(out), progress=False)


@pytest.fixture(scope="module")
def removed(tmp_path_factory):
    """A plain model's task 0 and task 1 'new' learned on it (version 1), then 'new' removed (version 2)."""
    root = tmp_path_factory.mktemp("ids")
    rng = np.random.default_rng(1)
    np.savez(root / "xy.npz", x=rng.normal(size=(40, 6)).astype(np.float32), y=rng.integers(0, 2, 40))
    v1 = _learn(relu_classifier(root / "plain"), "new", str(root / "xy.npz"), root / "1")
    assert [t["id"] for t in v1.tasks] == [0, 1]
    remove_task(str(root / "1"), "new", str(root / "2"))
    return root


def test_a_task_learned_after_removing_the_highest_id_gets_a_new_one(removed):
    v3 = _learn(removed / "2", "newer", str(removed / "xy.npz"), removed / "3")
    assert v3.task["id"] == 2 and [(t["id"], t["name"]) for t in v3.tasks] == [(0, "plain"), (2, "newer")]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"unknown task_id\(s\):\] \[1\]"):
        predict(str(removed / "3"), np.zeros((1, 6), np.float32), 1)
    assert [json.loads((removed / v / "tasks.json").read_text())["next_id"] for v in "123"] == [2, 2, 3]


def test_a_tasks_json_without_next_id_gives_the_highest_id_plus_one(removed, tmp_path):
    """A version written before next_id (version 2 without it): as before, the highest id + 1."""
    old = tmp_path / "old"
    shutil.copytree(removed / "2", old)
    tab = json.loads((old / "tasks.json").read_text())
    assert tab.pop("next_id") == 2
    (old / "tasks.json").write_text(json.dumps(tab, indent=2) + "\n")
    learned = _learn(old, "newest", str(removed / "xy.npz"), tmp_path / "learned")
    assert learned.task["id"] == 1 and json.loads((tmp_path / "learned" / "tasks.json").read_text())["next_id"] == 2


def test_a_task_learned_on_an_older_version_gets_an_id_no_version_beside_it_gave(removed, tmp_path):
    """learn-task on version 1 when version 3 gave id 2 to 'newer': it gave 2 again (version 1's next_id)."""
    for v in "12":
        shutil.copytree(removed / v, tmp_path / "m" / v)
    assert _learn(tmp_path / "m" / "2", "newer", str(removed / "xy.npz"), tmp_path / "m" / "3").task["id"] == 2
    older = _learn(tmp_path / "m" / "1", "other", str(removed / "xy.npz"), tmp_path / "elsewhere")
    assert older.task["id"] == 3 and [t["id"] for t in older.tasks] == [0, 1, 3]
    assert json.loads((tmp_path / "elsewhere" / "tasks.json").read_text())["next_id"] == 4
