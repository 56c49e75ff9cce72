"""retrain.py's image-folder layout and .npz files."""
import numpy as np
import pytest
import tensorflow as tf

import graphsurgeon as gs
from graphsurgeon._src.storage.datasets import load, which_split


def write_png(path, value):
    img = np.full((6, 5, 3), value, np.uint8)
    path.write_bytes(tf.io.encode_png(img).numpy())


def test_image_folder_decodes_resizes_and_splits_by_name(tmp_path):
    for c, v in (("cat", 0), ("dog", 255)):
        (tmp_path / c).mkdir()
        for i in range(4):
            write_png(tmp_path / c / f"img{i}_nohash_{i}.png", v)
    d = load(str(tmp_path), image_size=(8, 8))
    assert d.classes == ["cat", "dog"] and d.x.shape == (8, 8, 8, 3)
    assert d.x[d.y == 0].max() == 0.0 and d.x[d.y == 1].min() == 1.0
    # split from the hash of the file name without its _nohash_ part: stable as files are added
    assert list(d.split) == [which_split(k.split("/")[1], 10.0, 10.0) for k in d.keys]
    assert which_split("img0_nohash_0.png", 10, 10) == which_split("img0_nohash_9.png", 10, 10)


def test_image_folder_errors_name_the_file(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "dog").mkdir()
    write_png(tmp_path / "cat" / "a.png", 1)
    with pytest.raises(gs.DataError, match="dog: class folder holds no images"):
        load(str(tmp_path), image_size=(8, 8))
    (tmp_path / "dog" / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(gs.DataError, match="broken.jpg: cannot decode"):
        load(str(tmp_path), image_size=(8, 8))


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((3, 2)), labels=np.zeros(3))
    with pytest.raises(gs.DataError, match="no array 'y'"):
        load(str(tmp_path / "a.npz"))
    np.savez(tmp_path / "b.npz", x=np.zeros((3, 2)), y=np.zeros(2, np.int64))
    with pytest.raises(gs.DataError, match="x has 3 rows but y has 2"):
        load(str(tmp_path / "b.npz"))
